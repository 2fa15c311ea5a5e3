//! Build-time WGSL composition, validation and Rust code generation.
//!
//! Every kernel of splatdream lives as a `.wgsl` file under the workspace's `shaders/` folder.
//! A crate that owns kernels calls [`build_script`] (which runs [`build_kernels`]) from its
//! `build.rs`; it
//!
//! 1. registers every file under `shaders/lib/` as a naga_oil composable module (each starts with
//!    `#define_import_path splatdream::<name>`), so kernels can `#import splatdream::<name>`;
//! 2. composes each requested kernel variant with its shader defs (`#ifdef NAME` / `#else` /
//!    `#endif`), validates it with naga (all capabilities enabled; the device decides at run time),
//!    and writes the composed WGSL back out as a string constant — so a shader error fails
//!    `cargo build`, not a run;
//! 3. parses `shaders/lib/types.wgsl` and emits a `#[repr(C)]` Rust struct for every WGSL struct
//!    in it, with explicit padding computed from naga's layout, so host-side uniform structs are
//!    generated from the WGSL and never kept by hand.
//!
//! This module has no GPU dependency; build scripts use the crate with
//! `default-features = false`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use naga_oil::compose::{
    ComposableModuleDescriptor, Composer, NagaModuleDescriptor, ShaderDefValue, ShaderLanguage,
};

/// One kernel variant to compose: the kernel file (relative to `shaders/`, without `.wgsl`),
/// the variant's field name in the kernel's typed handle, and the boolean shader defs to set.
///
/// Each kernel file becomes one typed handle: a struct `<File>Kernel` with one
/// [`crate::launch::Kernel`] field per variant, and a constant `<FILE>` of it. E.g. the
/// variants `("project_forward", "sh_aa", ["SH", "ANTIALIASED"])` and
/// `("project_forward", "rgb", [])` give `PROJECT_FORWARD.sh_aa` and `PROJECT_FORWARD.rgb`.
#[derive(Debug, Clone)]
pub struct KernelVariant {
    /// File stem under `shaders/`, e.g. `"project_forward"`.
    pub file: String,
    /// Field of the variant in the kernel's handle, e.g. `"sh_aa"` (snake case); a kernel with
    /// one variant conventionally calls it `"main"`.
    pub variant: String,
    /// Shader defs set to `true` for this variant.
    pub defs: Vec<String>,
}

impl KernelVariant {
    /// The variant `variant` of `file` with the given defs.
    pub fn new(file: &str, variant: &str, defs: &[&str]) -> Self {
        Self {
            file: file.to_string(),
            variant: variant.to_string(),
            defs: defs.iter().map(|d| d.to_string()).collect(),
        }
    }
}

/// `project_forward` → `ProjectForward`.
fn camel(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The composed variants of one kernel file: `(file stem, [(variant, composed WGSL, workgroup
/// size)])`.
type KernelFile = (String, Vec<(KernelVariant, String, [u32; 3])>);

/// The typed handles of the composed variants (`(variant, composed WGSL, workgroup size)` per
/// kernel file, in first-use order).
fn kernel_handles(files: &[KernelFile]) -> String {
    let mut out = String::new();
    for (file, variants) in files {
        let ty = format!("{}Kernel", camel(file));
        let _ = writeln!(
            out,
            "/// The variants of `shaders/{file}.wgsl`, composed and validated at build time.\n#[derive(Clone, Copy, Debug)]\npub struct {ty} {{"
        );
        for (v, _, _) in variants {
            let _ = writeln!(
                out,
                "    /// Composed with defs {:?}.\n    pub {}: gpu::launch::Kernel,",
                v.defs, v.variant
            );
        }
        let _ = writeln!(
            out,
            "}}\n\n/// The typed handle of `shaders/{file}.wgsl`.\npub const {}: {ty} = {ty} {{",
            file.to_ascii_uppercase()
        );
        for (v, wgsl, [x, y, z]) in variants {
            let _ = writeln!(
                out,
                "    {}: gpu::launch::Kernel {{ name: {:?}, source: {:?}, workgroup: [{x}, {y}, {z}] }},",
                v.variant,
                format!("{file}.{}", v.variant),
                wgsl
            );
        }
        out.push_str("};\n\n");
    }
    out
}

/// Errors of [`build_kernels`]; every variant names the shader file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ShaderBuildError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// naga_oil could not compose or validate a module.
    #[error("{path} (defs {defs:?}): {message}")]
    Compose {
        /// The shader file.
        path: PathBuf,
        /// The defs of the failing variant.
        defs: Vec<String>,
        /// naga_oil's rendered report.
        message: String,
    },
    /// The composed module could not be validated or written back as WGSL.
    #[error("{path}: {message}")]
    Naga {
        /// The shader file.
        path: PathBuf,
        /// What naga said.
        message: String,
    },
    /// A struct in `types.wgsl` uses a type the Rust generator does not map.
    #[error("{path}: struct {name}: {message}")]
    Codegen {
        /// The types file.
        path: PathBuf,
        /// The struct.
        name: String,
        /// Why.
        message: String,
    },
}

fn read(path: &Path) -> Result<String, ShaderBuildError> {
    std::fs::read_to_string(path).map_err(|source| ShaderBuildError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The `#define_import_path` of a library file, if any.
fn import_path(source: &str) -> Option<String> {
    source.lines().find_map(|l| {
        l.trim()
            .strip_prefix("#define_import_path")
            .map(|rest| rest.trim().to_string())
    })
}

/// Names of modules a source imports (`#import a::b` or `#import a::b::{x, y}`).
fn imports_of(source: &str) -> Vec<String> {
    source
        .lines()
        .filter_map(|l| l.trim().strip_prefix("#import"))
        .map(|rest| {
            let rest = rest.trim();
            let end = rest.find(['{', ' ', ';']).unwrap_or(rest.len());
            rest[..end].trim_end_matches("::").to_string()
        })
        .collect()
}

/// Compose, validate and code-generate kernels. `shader_dir` is the workspace's `shaders/`
/// folder; returns the Rust source to `include!` (one typed handle per kernel file, see
/// [`KernelVariant`],
/// and the generated uniform structs). Also returns every file read, for `cargo:rerun-if-changed`.
pub fn build_kernels(
    shader_dir: &Path,
    variants: &[KernelVariant],
) -> Result<(String, Vec<PathBuf>), ShaderBuildError> {
    let lib_dir = shader_dir.join("lib");
    let mut read_files = vec![];
    let mut libs: BTreeMap<String, (PathBuf, String)> = BTreeMap::new();
    let mut entries: Vec<_> = std::fs::read_dir(&lib_dir)
        .map_err(|source| ShaderBuildError::Io {
            path: lib_dir.clone(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wgsl"))
        .collect();
    entries.sort();
    for path in entries {
        let src = read(&path)?;
        read_files.push(path.clone());
        if let Some(name) = import_path(&src) {
            libs.insert(name, (path, src));
        }
    }

    // All defs any variant uses; library modules are registered with each variant's defs so
    // their own #ifdefs follow the kernel's.
    let mut out = String::new();
    let mut handles: Vec<KernelFile> = vec![];
    writeln!(
        out,
        "// @generated by gpu::shader::build_kernels from shaders/; do not edit."
    )
    .ok();

    for v in variants {
        let path = shader_dir.join(format!("{}.wgsl", v.file));
        let src = read(&path)?;
        read_files.push(path.clone());
        let defs: HashMap<String, ShaderDefValue> = v
            .defs
            .iter()
            .map(|d| (d.clone(), ShaderDefValue::Bool(true)))
            .collect();
        let mut composer = Composer::default().with_capabilities(naga::valid::Capabilities::all());
        // Register libraries in dependency order.
        let mut added = std::collections::HashSet::new();
        fn add_lib(
            name: &str,
            libs: &BTreeMap<String, (PathBuf, String)>,
            composer: &mut Composer,
            added: &mut std::collections::HashSet<String>,
            defs: &HashMap<String, ShaderDefValue>,
            variant_defs: &[String],
        ) -> Result<(), ShaderBuildError> {
            if added.contains(name) {
                return Ok(());
            }
            // `#import a::b::item` names an item of module `a::b`: use the longest known prefix.
            let mut module = name;
            while !libs.contains_key(module) {
                match module.rfind("::") {
                    Some(k) => module = &module[..k],
                    None => return Ok(()), // naga_oil reports the unknown import with a span
                }
            }
            let name = module;
            if added.contains(name) {
                return Ok(());
            }
            let (path, src) = &libs[name];
            for dep in imports_of(src) {
                add_lib(&dep, libs, composer, added, defs, variant_defs)?;
            }
            let added_module = composer.add_composable_module(ComposableModuleDescriptor {
                source: src,
                file_path: &path.to_string_lossy(),
                language: ShaderLanguage::Wgsl,
                shader_defs: defs.clone(),
                ..Default::default()
            });
            if let Err(e) = added_module {
                return Err(ShaderBuildError::Compose {
                    path: path.clone(),
                    defs: variant_defs.to_vec(),
                    message: e.emit_to_string(composer),
                });
            }
            added.insert(name.to_string());
            Ok(())
        }
        for dep in imports_of(&src) {
            add_lib(&dep, &libs, &mut composer, &mut added, &defs, &v.defs)?;
        }
        let module = composer
            .make_naga_module(NagaModuleDescriptor {
                source: &src,
                file_path: &path.to_string_lossy(),
                shader_defs: defs.clone(),
                ..Default::default()
            })
            .map_err(|e| ShaderBuildError::Compose {
                path: path.clone(),
                defs: v.defs.clone(),
                message: e.emit_to_string(&composer),
            })?;
        let info = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .validate(&module)
        .map_err(|e| ShaderBuildError::Naga {
            path: path.clone(),
            message: format!("{:?}", e.into_inner()),
        })?;
        let wgsl =
            naga::back::wgsl::write_string(&module, &info, naga::back::wgsl::WriterFlags::empty())
                .map_err(|e| ShaderBuildError::Naga {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
        let ep = module
            .entry_points
            .iter()
            .find(|e| e.name == "main")
            .ok_or_else(|| ShaderBuildError::Naga {
                path: path.clone(),
                message: "no compute entry point named `main`".into(),
            })?;
        // Kernels are launched with every declared binding bound and an automatic pipeline
        // layout, which only lists bindings `main` uses: an unused binding is a launch error,
        // so catch it here.
        let ep_index = module
            .entry_points
            .iter()
            .position(|e| e.name == "main")
            .unwrap_or(0);
        let ep_info = info.get_entry_point(ep_index);
        for (handle, var) in module.global_variables.iter() {
            if let Some(b) = &var.binding
                && ep_info[handle].is_empty()
            {
                return Err(ShaderBuildError::Naga {
                    path: path.clone(),
                    message: format!(
                        "defs {:?}: @binding({}) `{}` is declared but not used by `main`",
                        v.defs,
                        b.binding,
                        var.name.as_deref().unwrap_or("?")
                    ),
                });
            }
        }
        let entry = (v.clone(), wgsl, ep.workgroup_size);
        match handles.iter_mut().find(|(f, _)| *f == v.file) {
            Some((_, list)) => list.push(entry),
            None => handles.push((v.file.clone(), vec![entry])),
        }
    }
    out.push_str(&kernel_handles(&handles));

    let types_path = lib_dir.join("types.wgsl");
    if types_path.exists() {
        out.push_str(&generate_structs(&types_path)?);
    }
    Ok((out, read_files))
}

/// The whole job of a kernel-owning crate's `build.rs`: [`build_kernels`] on the workspace's
/// `shaders/` folder (found from `CARGO_MANIFEST_DIR`, two levels up), `cargo:rerun-if-changed`
/// for every file read, and the generated code written to `$OUT_DIR/kernels.rs` (for
/// `include!`). On a shader error it prints the full report (with source spans), repeats it as
/// cargo warnings and exits with status 1, failing the build.
pub fn build_script(variants: &[KernelVariant]) {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let shader_dir = manifest.join("../../shaders");
    let fail = |e: &dyn std::fmt::Display| -> ! {
        eprintln!("{e}");
        for line in e.to_string().lines() {
            println!("cargo:warning={line}");
        }
        std::process::exit(1)
    };
    let (code, files) = build_kernels(&shader_dir, variants).unwrap_or_else(|e| fail(&e));
    for f in files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        shader_dir.join("lib").display()
    );
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("kernels.rs");
    if let Err(e) = std::fs::write(&out, code) {
        fail(&format!("writing {}: {e}", out.display()));
    }
}

/// Emit `#[repr(C)]` bytemuck structs for every struct in a plain WGSL file.
fn generate_structs(path: &Path) -> Result<String, ShaderBuildError> {
    let src: String = read(path)?
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let module = naga::front::wgsl::parse_str(&src).map_err(|e| ShaderBuildError::Naga {
        path: path.to_path_buf(),
        message: e.emit_to_string(&src),
    })?;
    let mut layouter = naga::proc::Layouter::default();
    layouter
        .update(module.to_ctx())
        .map_err(|e| ShaderBuildError::Naga {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let mut out = String::new();
    for (handle, ty) in module.types.iter() {
        let naga::TypeInner::Struct { members, span } = &ty.inner else {
            continue;
        };
        let name = ty.name.clone().unwrap_or_default();
        writeln!(
            out,
            "/// Host mirror of WGSL `struct {name}` in `shaders/lib/types.wgsl` ({span} bytes).\n\
             #[repr(C)]\n#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]\n\
             pub struct {name} {{"
        )
        .ok();
        let mut offset = 0u32;
        let mut pad = 0;
        for m in members {
            if m.offset > offset {
                writeln!(
                    out,
                    "    #[doc(hidden)]\n    pub _pad{pad}: [u8; {}],",
                    m.offset - offset
                )
                .ok();
                pad += 1;
            }
            let rust = rust_type(&module, m.ty).map_err(|message| ShaderBuildError::Codegen {
                path: path.to_path_buf(),
                name: name.clone(),
                message,
            })?;
            let mname = m.name.clone().unwrap_or_default();
            writeln!(
                out,
                "    /// WGSL member `{mname}` at byte {}.\n    pub {mname}: {rust},",
                m.offset
            )
            .ok();
            offset = m.offset + layouter[m.ty].size;
        }
        if *span > offset {
            writeln!(
                out,
                "    #[doc(hidden)]\n    pub _pad{pad}: [u8; {}],",
                span - offset
            )
            .ok();
        }
        writeln!(out, "}}").ok();
        writeln!(
            out,
            "const _: () = assert!(std::mem::size_of::<{name}>() == {});",
            layouter[handle].size
        )
        .ok();
    }
    Ok(out)
}

fn scalar_rust(s: naga::Scalar) -> Result<&'static str, String> {
    match (s.kind, s.width) {
        (naga::ScalarKind::Float, 4) => Ok("f32"),
        (naga::ScalarKind::Uint, 4) => Ok("u32"),
        (naga::ScalarKind::Sint, 4) => Ok("i32"),
        other => Err(format!("unsupported scalar {other:?}")),
    }
}

fn rust_type(module: &naga::Module, ty: naga::Handle<naga::Type>) -> Result<String, String> {
    let t = &module.types[ty];
    Ok(match &t.inner {
        naga::TypeInner::Scalar(s) => scalar_rust(*s)?.to_string(),
        naga::TypeInner::Atomic(s) => scalar_rust(*s)?.to_string(),
        naga::TypeInner::Vector { size, scalar } => {
            format!("[{}; {}]", scalar_rust(*scalar)?, *size as u32)
        }
        naga::TypeInner::Matrix {
            columns,
            rows,
            scalar,
        } => {
            let rows = if *rows as u32 == 3 { 4 } else { *rows as u32 };
            format!("[[{}; {rows}]; {}]", scalar_rust(*scalar)?, *columns as u32)
        }
        naga::TypeInner::Array {
            base,
            size: naga::ArraySize::Constant(n),
            ..
        } => format!("[{}; {}]", rust_type(module, *base)?, n),
        naga::TypeInner::Struct { .. } => t.name.clone().ok_or("anonymous struct")?,
        other => return Err(format!("unsupported member type {other:?}")),
    })
}
