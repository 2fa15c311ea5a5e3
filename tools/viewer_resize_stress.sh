#!/bin/bash
# Resize the live viewer's window while `fit` trains, to check that a surface reconfiguration
# racing the training thread's submissions no longer ends the run (issue 25; before the fix
# the first lost race panicked in cubecl's uncaptured-error handler: "In Surface::configure:
# Failed to wait for GPU to come idle"). Needs Xvfb and xdotool (apt-get install xvfb xdotool).
#
#   tools/viewer_resize_stress.sh [path/to/splatdream] [out dir]
#
# Passes when the run exits 0 and its screenshot (step 350) has the window's last size.
set -u
bin=${1:-target/debug/splatdream}
out=${2:-/tmp/splatdream-resize}
display=:${SPLATDREAM_STRESS_DISPLAY:-77}
rm -rf "$out" && mkdir -p "$out"
Xvfb "$display" -screen 0 1280x800x24 > /dev/null 2>&1 &
xvfb=$!
trap 'kill $xvfb 2> /dev/null' EXIT
sleep 2
export DISPLAY=$display
"$bin" fit --config configs/spot-cow.toml --steps 400 --out "$out/run" --viewer \
    --viewer-screenshot-step 350 --viewer-screenshot "$out/shot.png" > "$out/log.txt" 2>&1 &
run=$!
for i in $(seq 1 25); do
    id=$(xdotool search --name . 2> /dev/null | tail -1)
    [ -n "$id" ] && xdotool windowsize "$id" $((600 + i % 7 * 60)) $((400 + i % 5 * 50))
    sleep 0.7
done
id=$(xdotool search --name . 2> /dev/null | tail -1)
[ -n "$id" ] && xdotool windowsize "$id" 777 555
wait $run
status=$?
races=$(grep -c "raced the training thread" "$out/log.txt")
size=$(python3 -c "import json; m = json.load(open('$out/shot.png.json')); print(m['width'], m['height'])" 2> /dev/null)
echo "exit $status, $races lost reconfiguration races survived, screenshot ${size:-missing} (window 777 555)"
[ "$status" = 0 ] && [ "$size" = "777 555" ]
