#define_import_path splatdream::projection

// The one source of projection math, shared by the forward and backward kernels.
// Conventions follow gsplat (`gsplat.cuda._torch_impl._fully_fused_projection`, "classic" and
// "antialiased" modes): EWA splatting (Zwicker et al. 2002), the 3DGS perspective Jacobian
// with x/z and y/z clamped to 1.3× the field of view (Kerbl et al. 2023), Σ2d += eps2d·I.

#import splatdream::types::{RasterParams, Camera}
#import splatdream::common::{is_finite}
#import splatdream::raster::ALPHA_MIN

const SH_C0: f32 = 0.28209479177387814;
const SH_C1: f32 = 0.4886025119029199;
const SH_C2_0: f32 = 1.0925484305920792;
const SH_C2_1: f32 = -1.0925484305920792;
const SH_C2_2: f32 = 0.31539156525252005;
const SH_C2_3: f32 = -1.0925484305920792;
const SH_C2_4: f32 = 0.5462742152960396;
const SH_C3_0: f32 = -0.5900435899266435;
const SH_C3_1: f32 = 2.890611442640554;
const SH_C3_2: f32 = -0.4570457994644658;
const SH_C3_3: f32 = 0.3731763325901154;
const SH_C3_4: f32 = -0.4570457994644658;
const SH_C3_5: f32 = 1.445305721320277;
const SH_C3_6: f32 = -0.5900435899266435;

// Tile edge in pixels.
const TILE: u32 = 16u;
// Smallest squared quaternion norm treated as a rotation (below it: identity, zero gradient).
const QUAT_EPS2: f32 = 1e-24;

// Normalised quaternion (w, x, y, z); identity for a (near-)zero quaternion.
fn normalize_quat(q: vec4<f32>) -> vec4<f32> {
    let n2 = dot(q, q);
    if !(n2 > QUAT_EPS2) || !is_finite(n2) {
        return vec4<f32>(1.0, 0.0, 0.0, 0.0);
    }
    return q * inverseSqrt(n2);
}

// Rotation matrix of a unit quaternion (w, x, y, z); WGSL matrices are built from columns.
fn quat_to_rotmat(q: vec4<f32>) -> mat3x3<f32> {
    let w = q.x;
    let x = q.y;
    let y = q.z;
    let z = q.w;
    return mat3x3<f32>(
        vec3<f32>(1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y + w * z), 2.0 * (x * z - w * y)),
        vec3<f32>(2.0 * (x * y - w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z + w * x)),
        vec3<f32>(2.0 * (x * z + w * y), 2.0 * (y * z - w * x), 1.0 - 2.0 * (x * x + y * y)),
    );
}

// World→camera rotation of a camera.
fn cam_rotation(cam: Camera) -> mat3x3<f32> {
    return mat3x3<f32>(cam.viewmat[0].xyz, cam.viewmat[1].xyz, cam.viewmat[2].xyz);
}

// Everything the projection of one splat into one camera produces.
struct Proj {
    // Camera-space mean.
    p: vec3<f32>,
    // Rotation R and scales s of the splat; M = R·diag(s).
    rot: mat3x3<f32>,
    scale: vec3<f32>,
    // World→camera rotation.
    w: mat3x3<f32>,
    // Camera-space covariance Σc = W R S Sᵀ Rᵀ Wᵀ.
    cov_c: mat3x3<f32>,
    // Perspective Jacobian (2×3) at the clamped mean.
    j: mat3x2<f32>,
    // Projected mean (pixels).
    mean2d: vec2<f32>,
    // Blurred 2-D covariance (a, b, c) = (Σ00, Σ01, Σ11) + eps2d on the diagonal.
    cov2d: vec3<f32>,
    // Determinants before and after the blur.
    det_orig: f32,
    det: f32,
    // Conic (inverse of the blurred covariance).
    conic: vec3<f32>,
    // Per-axis radius in pixels, ceil(3.33·σ): the on-screen test. Tile boxes use the
    // tighter `opacity_aware_radius`.
    radius: vec2<f32>,
    // Whether x/z (y/z) was inside the clamp range: selects the Jacobian's dependence.
    in_x: bool,
    in_y: bool,
    // Clamp limits used when outside (signed: the bound that was applied).
    lim_x: f32,
    lim_y: f32,
    // False when culled (behind the near plane, past far, degenerate, off-screen, non-finite).
    visible: bool,
}

fn project(mean: vec3<f32>, quat: vec4<f32>, log_scale: vec3<f32>, cam: Camera, params: RasterParams) -> Proj {
    var out: Proj;
    out.visible = false;
    let q = normalize_quat(quat);
    out.rot = quat_to_rotmat(q);
    out.scale = exp(log_scale);
    out.w = cam_rotation(cam);
    out.p = out.w * mean + cam.viewmat[3].xyz;
    let m = mat3x3<f32>(out.rot[0] * out.scale.x, out.rot[1] * out.scale.y, out.rot[2] * out.scale.z);
    let cov_w = m * transpose(m);
    out.cov_c = out.w * cov_w * transpose(out.w);

    let tz = out.p.z;
    if !(tz > params.near && tz < params.far) {
        return out;
    }
    let width = f32(params.width);
    let height = f32(params.height);
    let tan_fovx = 0.5 * width / cam.fx;
    let tan_fovy = 0.5 * height / cam.fy;
    let lim_x_pos = (width - cam.cx) / cam.fx + 0.3 * tan_fovx;
    let lim_x_neg = cam.cx / cam.fx + 0.3 * tan_fovx;
    let lim_y_pos = (height - cam.cy) / cam.fy + 0.3 * tan_fovy;
    let lim_y_neg = cam.cy / cam.fy + 0.3 * tan_fovy;
    let rx = out.p.x / tz;
    let ry = out.p.y / tz;
    let crx = clamp(rx, -lim_x_neg, lim_x_pos);
    let cry = clamp(ry, -lim_y_neg, lim_y_pos);
    out.in_x = rx >= -lim_x_neg && rx <= lim_x_pos;
    out.in_y = ry >= -lim_y_neg && ry <= lim_y_pos;
    out.lim_x = crx;
    out.lim_y = cry;
    let tx = tz * crx;
    let ty = tz * cry;
    let rz = 1.0 / tz;
    let rz2 = rz * rz;
    out.j = mat3x2<f32>(
        vec2<f32>(cam.fx * rz, 0.0),
        vec2<f32>(0.0, cam.fy * rz),
        vec2<f32>(-cam.fx * tx * rz2, -cam.fy * ty * rz2),
    );
    let cov2 = out.j * out.cov_c * transpose(out.j);
    out.det_orig = cov2[0][0] * cov2[1][1] - cov2[0][1] * cov2[1][0];
    let a = cov2[0][0] + params.eps2d;
    let b = 0.5 * (cov2[0][1] + cov2[1][0]);
    let c = cov2[1][1] + params.eps2d;
    out.cov2d = vec3<f32>(a, b, c);
    out.det = a * c - b * b;
    if !(out.det > 0.0) {
        return out;
    }
    let inv_det = 1.0 / out.det;
    out.conic = vec3<f32>(c * inv_det, -b * inv_det, a * inv_det);
    out.mean2d = vec2<f32>(cam.fx * out.p.x * rz + cam.cx, cam.fy * out.p.y * rz + cam.cy);
    out.radius = ceil(3.33 * sqrt(vec2<f32>(a, c)));
    let inside = out.mean2d.x + out.radius.x > 0.0 && out.mean2d.x - out.radius.x < width
        && out.mean2d.y + out.radius.y > 0.0 && out.mean2d.y - out.radius.y < height;
    let finite = is_finite(out.mean2d.x) && is_finite(out.mean2d.y) && is_finite(out.conic.x)
        && is_finite(out.conic.y) && is_finite(out.conic.z) && is_finite(out.radius.x)
        && is_finite(out.radius.y);
    out.visible = inside && finite;
    return out;
}

// Antialiased-mode opacity compensation sqrt(max(det_orig / det, 0)).
fn compensation(pr: Proj) -> f32 {
    return sqrt(max(pr.det_orig / pr.det, 0.0));
}

// Per-axis tile-box radius in pixels of a splat with blurred 2-D covariance `cov2d` (a, b, c)
// and effective opacity `opacity` (gsplat's CUDA projection, `ProjectionEWA3DGSFused.cu`). A
// pixel passes the rasterizer's test o·e^(−σ) ≥ 1/255 only where σ ≤ ln(255·o), i.e. inside
// the ellipse dᵀΣ⁻¹d ≤ 2·ln(255·o), whose box is ±√(2·ln(255·o)·Σᵢᵢ); so the box is
// ceil(min(3.33, √(2·ln(255·o)))·σᵢ): fewer tile intersections, the same image and gradients.
// Callers cull splats with o < 1/255 (they never pass the test).
fn opacity_aware_radius(cov2d: vec3<f32>, opacity: f32) -> vec2<f32> {
    let extend = min(3.33, sqrt(2.0 * log(max(opacity, ALPHA_MIN) / ALPHA_MIN)));
    return ceil(extend * sqrt(vec2<f32>(cov2d.x, cov2d.z)));
}

// Tile rectangle [min, max) covered by a visible splat (gsplat `isect_tiles` rule):
// floor((mean − r) / 16) .. ceil((mean + r) / 16), clamped to the grid. This is the only
// definition of a splat's tiles: counting and emission both read the rectangle it returns.
fn tile_rect(mean2d: vec2<f32>, radius: vec2<f32>, params: RasterParams) -> vec4<u32> {
    let tile = f32(TILE);
    let lo = floor(mean2d / tile - radius / tile);
    let hi = ceil(mean2d / tile + radius / tile);
    let grid = vec2<f32>(f32(params.tiles_x), f32(params.tiles_y));
    let lo_c = clamp(lo, vec2<f32>(0.0), grid);
    let hi_c = clamp(hi, vec2<f32>(0.0), grid);
    return vec4<u32>(vec2<u32>(lo_c), vec2<u32>(hi_c));
}

// Number of tiles of a rectangle from tile_rect.
fn rect_area(r: vec4<u32>) -> u32 {
    return (r.z - r.x) * (r.w - r.y);
}

// Real SH basis values b_k(dir) for k < 16 (3DGS / gsplat sign conventions).
fn sh_basis(k: u32, d: vec3<f32>) -> f32 {
    let x = d.x;
    let y = d.y;
    let z = d.z;
    switch k {
        case 0u: { return SH_C0; }
        case 1u: { return -SH_C1 * y; }
        case 2u: { return SH_C1 * z; }
        case 3u: { return -SH_C1 * x; }
        case 4u: { return SH_C2_0 * x * y; }
        case 5u: { return SH_C2_1 * y * z; }
        case 6u: { return SH_C2_2 * (2.0 * z * z - x * x - y * y); }
        case 7u: { return SH_C2_3 * x * z; }
        case 8u: { return SH_C2_4 * (x * x - y * y); }
        case 9u: { return SH_C3_0 * y * (3.0 * x * x - y * y); }
        case 10u: { return SH_C3_1 * x * y * z; }
        case 11u: { return SH_C3_2 * y * (4.0 * z * z - x * x - y * y); }
        case 12u: { return SH_C3_3 * z * (2.0 * z * z - 3.0 * x * x - 3.0 * y * y); }
        case 13u: { return SH_C3_4 * x * (4.0 * z * z - x * x - y * y); }
        case 14u: { return SH_C3_5 * z * (x * x - y * y); }
        default: { return SH_C3_6 * x * (x * x - 3.0 * y * y); }
    }
}

// Gradient of sh_basis(k, d) with respect to d.
fn sh_basis_grad(k: u32, d: vec3<f32>) -> vec3<f32> {
    let x = d.x;
    let y = d.y;
    let z = d.z;
    switch k {
        case 0u: { return vec3<f32>(0.0); }
        case 1u: { return vec3<f32>(0.0, -SH_C1, 0.0); }
        case 2u: { return vec3<f32>(0.0, 0.0, SH_C1); }
        case 3u: { return vec3<f32>(-SH_C1, 0.0, 0.0); }
        case 4u: { return SH_C2_0 * vec3<f32>(y, x, 0.0); }
        case 5u: { return SH_C2_1 * vec3<f32>(0.0, z, y); }
        case 6u: { return SH_C2_2 * vec3<f32>(-2.0 * x, -2.0 * y, 4.0 * z); }
        case 7u: { return SH_C2_3 * vec3<f32>(z, 0.0, x); }
        case 8u: { return SH_C2_4 * vec3<f32>(2.0 * x, -2.0 * y, 0.0); }
        case 9u: { return SH_C3_0 * vec3<f32>(6.0 * x * y, 3.0 * x * x - 3.0 * y * y, 0.0); }
        case 10u: { return SH_C3_1 * vec3<f32>(y * z, x * z, x * y); }
        case 11u: { return SH_C3_2 * vec3<f32>(-2.0 * x * y, 4.0 * z * z - x * x - 3.0 * y * y, 8.0 * y * z); }
        case 12u: { return SH_C3_3 * vec3<f32>(-6.0 * x * z, -6.0 * y * z, 6.0 * z * z - 3.0 * x * x - 3.0 * y * y); }
        case 13u: { return SH_C3_4 * vec3<f32>(4.0 * z * z - 3.0 * x * x - y * y, -2.0 * x * y, 8.0 * x * z); }
        case 14u: { return SH_C3_5 * vec3<f32>(2.0 * x * z, -2.0 * y * z, x * x - y * y); }
        default: { return SH_C3_6 * vec3<f32>(3.0 * x * x - 3.0 * y * y, -6.0 * x * y, 0.0); }
    }
}

// Number of SH coefficients used at a degree.
fn sh_count(degree: u32) -> u32 {
    return (degree + 1u) * (degree + 1u);
}

// Gradient of L through a unit quaternion's rotation matrix: dL/dq̂ given dL/dR (V, column-major
// V[col][row]); q̂ = (w, x, y, z).
fn rotmat_vjp(q: vec4<f32>, v: mat3x3<f32>) -> vec4<f32> {
    let w = q.x;
    let x = q.y;
    let y = q.z;
    let z = q.w;
    // Rij = v[j][i]
    let v00 = v[0][0]; let v01 = v[1][0]; let v02 = v[2][0];
    let v10 = v[0][1]; let v11 = v[1][1]; let v12 = v[2][1];
    let v20 = v[0][2]; let v21 = v[1][2]; let v22 = v[2][2];
    let gw = 2.0 * (-z * v01 + y * v02 + z * v10 - x * v12 - y * v20 + x * v21);
    let gx = 2.0 * (y * v01 + z * v02 + y * v10 - 2.0 * x * v11 - w * v12 + z * v20 + w * v21 - 2.0 * x * v22);
    let gy = 2.0 * (-2.0 * y * v00 + x * v01 + w * v02 + x * v10 + z * v12 - w * v20 + z * v21 - 2.0 * y * v22);
    let gz = 2.0 * (-2.0 * z * v00 - w * v01 + x * v02 + w * v10 - 2.0 * z * v11 + y * v12 + x * v20 + y * v21);
    return vec4<f32>(gw, gx, gy, gz);
}

// Gradient through q̂ = q / |q| (raw, unnormalised q).
fn normalize_quat_vjp(q: vec4<f32>, v_qn: vec4<f32>) -> vec4<f32> {
    let n2 = dot(q, q);
    if !(n2 > QUAT_EPS2) || !is_finite(n2) {
        return vec4<f32>(0.0);
    }
    let inv = inverseSqrt(n2);
    let qn = q * inv;
    return (v_qn - qn * dot(qn, v_qn)) * inv;
}
