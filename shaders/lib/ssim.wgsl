#define_import_path splatdream::ssim

// Shared by the fused SSIM kernels: a 16×16 tile of output pixels of one (image, channel),
// the 11×11 Gaussian window as an 11-tap horizontal then an 11-tap vertical pass over a
// 26×26 region staged in workgroup memory (zero outside the image: "same" zero padding,
// as 3DGS's `ssim()` computes it with conv2d).

#import splatdream::types::SsimParams

// Window radius and side, output tile side, staged region side.
const RADIUS: u32 = 5u;
const WINDOW: u32 = 11u;
const TILE: u32 = 16u;
const SIDE: u32 = 26u;
// SIDE × SIDE staged inputs; SIDE rows × TILE columns of horizontal sums.
const STAGED: u32 = 676u;
const ROWS: u32 = 416u;

// Flat index of channel `ch` of pixel (x, y) of image `img`, or -1 outside the image.
fn pixel_index(p: SsimParams, img: u32, ch: u32, x: i32, y: i32) -> i32 {
    if x < 0 || y < 0 || x >= i32(p.width) || y >= i32(p.height) {
        return -1;
    }
    return i32(((img * p.height + u32(y)) * p.width + u32(x)) * p.channels + ch);
}

// Staged-region coordinates (0..SIDE) → image coordinates, for the tile of workgroup `wid`.
fn region_xy(wid: vec3<u32>, e: u32) -> vec2<i32> {
    let origin = vec2<i32>(wid.xy * TILE) - i32(RADIUS);
    return origin + vec2<i32>(i32(e % SIDE), i32(e / SIDE));
}
