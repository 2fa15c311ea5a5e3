#!/usr/bin/env python3
"""Module cycles inside each crate: a module `a` that uses `crate::b` (outside tests and doc
comments) points at `b`; prints every cycle and exits 1 if there is one. Standard library only.

    python3 tools/check_module_cycles.py
"""
import sys
import re,os,glob
found = False
for c in sorted(glob.glob('crates/*/src')):
    mods={}
    for p in glob.glob(c+'/**/*.rs',recursive=True):
        rel=os.path.relpath(p,c)
        top=rel.split('/')[0].replace('.rs','')
        if top in ('lib','main'): continue
        s=open(p).read().split('#[cfg(test)]')[0]
        s='\n'.join(l for l in s.split('\n') if not l.strip().startswith('//'))
        refs=set(re.findall(r'crate::([a-z_0-9]+)',s))-{top}
        mods.setdefault(top,set()).update(refs)
    seen={};cyc=[]
    def dfs(u,stack):
        seen[u]=1;stack.append(u)
        for v in mods.get(u,()):
            if v not in mods: continue
            if seen.get(v)==1: cyc.append(stack[stack.index(v):]+[v])
            elif not seen.get(v): dfs(v,stack)
        stack.pop();seen[u]=2
    for m in mods:
        if not seen.get(m): dfs(m,[])
    if cyc:
        print(c, "cycles:", cyc[:5])
        found = True
sys.exit(1 if found else 0)
