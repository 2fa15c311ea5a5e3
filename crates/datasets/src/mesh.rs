//! Geometry sources for initialising generation: triangle meshes (OBJ through `tobj`, glTF
//! binary/JSON through `gltf`) sampled on their surface, and plain point-cloud PLY files.
//!
//! Surface sampling is area weighted: a triangle is chosen with probability proportional to its
//! area, then a point uniformly inside it (barycentric `(1 − √u, √u(1 − v), √u·v)`). Each
//! point's colour comes from the material's base-colour texture at the interpolated UV when
//! there is one, else from interpolated vertex colours, else from the material's diffuse colour,
//! else mid grey.
//!
//! [`normalise`] moves the points' bounding-box centre to the origin and scales them so the
//! farthest point lies at a given radius; [`y_up_to_z_up`] maps the OBJ/glTF convention
//! (y up, front facing +z) to the generation world (z up, front facing +x, see
//! `distill::cameras`).

use std::path::{Path, PathBuf};

use glam::{Mat4, Vec3};
use rand::{Rng, SeedableRng, rngs::StdRng};

/// Errors reading a mesh or point cloud; each names the file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct GeometryError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

fn err(path: &Path, message: impl Into<String>) -> GeometryError {
    GeometryError {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// How a part of a mesh is coloured.
#[derive(Clone, Debug)]
pub enum Shading {
    /// A texture sampled at the interpolated UV (`v_down`: whether v grows downwards in the
    /// image, as in glTF; OBJ's v grows upwards).
    Texture {
        /// The image.
        image: image::RgbImage,
        /// Per-vertex UVs, indexed like the positions.
        uvs: Vec<[f32; 2]>,
        /// Whether v = 0 is the top row.
        v_down: bool,
    },
    /// Per-vertex colours in [0, 1], indexed like the positions.
    VertexColours(Vec<[f32; 3]>),
    /// One colour for the whole part.
    Constant([f32; 3]),
}

/// One part of a mesh: triangles sharing a material.
#[derive(Clone, Debug)]
pub struct Part {
    /// Vertex positions.
    pub positions: Vec<Vec3>,
    /// Triangles as vertex indices.
    pub triangles: Vec<[u32; 3]>,
    /// Colouring.
    pub shading: Shading,
}

/// A triangle mesh made of parts.
#[derive(Clone, Debug, Default)]
pub struct Mesh {
    /// The parts.
    pub parts: Vec<Part>,
}

/// Mid grey, the colour of uncoloured geometry.
pub const GREY: [f32; 3] = [0.5, 0.5, 0.5];

impl Mesh {
    /// Load an `.obj` or `.glb`/`.gltf` file (chosen by extension).
    ///
    /// # Errors
    /// [`GeometryError`] naming the file: unreadable, unsupported extension, no triangles.
    pub fn load(path: &Path) -> Result<Self, GeometryError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .unwrap_or_default();
        let mesh = match ext.as_str() {
            "obj" => Self::load_obj(path)?,
            "glb" | "gltf" => Self::load_gltf(path)?,
            _ => {
                return Err(err(
                    path,
                    "unsupported mesh format; expected .obj, .glb or .gltf",
                ));
            }
        };
        if mesh.parts.iter().all(|p| p.triangles.is_empty()) {
            return Err(err(path, "the mesh has no triangles"));
        }
        Ok(mesh)
    }

    /// Load a Wavefront OBJ with its MTL (diffuse texture `map_Kd` or colour `Kd`).
    ///
    /// # Errors
    /// [`GeometryError`] when the file cannot be parsed.
    pub fn load_obj(path: &Path) -> Result<Self, GeometryError> {
        let (models, materials) = tobj::load_obj(
            path,
            &tobj::LoadOptions {
                single_index: true,
                triangulate: true,
                ..Default::default()
            },
        )
        .map_err(|e| err(path, format!("reading OBJ: {e}")))?;
        // A missing or broken MTL only costs the colours.
        let materials = materials.unwrap_or_else(|e| {
            tracing::warn!("{}: materials not loaded ({e}); grey", path.display());
            vec![]
        });
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut parts = vec![];
        for m in models {
            let mesh = m.mesh;
            let positions: Vec<Vec3> = mesh
                .positions
                .chunks_exact(3)
                .map(|p| Vec3::new(p[0], p[1], p[2]))
                .collect();
            let triangles: Vec<[u32; 3]> = mesh
                .indices
                .chunks_exact(3)
                .map(|t| [t[0], t[1], t[2]])
                .collect();
            let material = mesh.material_id.and_then(|i| materials.get(i));
            let texture = material
                .and_then(|m| m.diffuse_texture.as_ref())
                .and_then(|name| match image::open(dir.join(name)) {
                    Ok(img) => Some(img.to_rgb8()),
                    Err(e) => {
                        tracing::warn!("{}: texture {name}: {e}", path.display());
                        None
                    }
                });
            let shading = match texture {
                Some(image) if mesh.texcoords.len() == positions.len() * 2 => Shading::Texture {
                    image,
                    uvs: mesh
                        .texcoords
                        .chunks_exact(2)
                        .map(|t| [t[0], t[1]])
                        .collect(),
                    v_down: false,
                },
                _ if mesh.vertex_color.len() == positions.len() * 3 => Shading::VertexColours(
                    mesh.vertex_color
                        .chunks_exact(3)
                        .map(|c| [c[0], c[1], c[2]])
                        .collect(),
                ),
                _ => Shading::Constant(material.and_then(|m| m.diffuse).unwrap_or(GREY)),
            };
            parts.push(Part {
                positions,
                triangles,
                shading,
            });
        }
        Ok(Self { parts })
    }

    /// Load a glTF 2.0 file (`.glb` or `.gltf` with its buffers), every triangle primitive of
    /// every node of the default scene (or of all scenes when none is marked default), with the
    /// node transforms applied. Colour: the base-colour texture (TEXCOORD_0), else COLOR_0,
    /// else the base-colour factor.
    ///
    /// # Errors
    /// [`GeometryError`] when the file or its buffers cannot be read.
    pub fn load_gltf(path: &Path) -> Result<Self, GeometryError> {
        let (doc, buffers, images) =
            gltf::import(path).map_err(|e| err(path, format!("reading glTF: {e}")))?;
        let mut parts = vec![];
        let mut stack: Vec<(gltf::Node, Mat4)> = vec![];
        let scenes: Vec<gltf::Scene> = match doc.default_scene() {
            Some(s) => vec![s],
            None => doc.scenes().collect(),
        };
        for scene in scenes {
            stack.extend(scene.nodes().map(|n| (n, Mat4::IDENTITY)));
        }
        while let Some((node, parent)) = stack.pop() {
            let world = parent * Mat4::from_cols_array_2d(&node.transform().matrix());
            stack.extend(node.children().map(|c| (c, world)));
            let Some(mesh) = node.mesh() else { continue };
            for prim in mesh.primitives() {
                if prim.mode() != gltf::mesh::Mode::Triangles {
                    continue;
                }
                let reader = prim.reader(|b| buffers.get(b.index()).map(|d| &d.0[..]));
                let Some(pos) = reader.read_positions() else {
                    continue;
                };
                let positions: Vec<Vec3> = pos
                    .map(|p| world.transform_point3(Vec3::from_array(p)))
                    .collect();
                let idx: Vec<u32> = match reader.read_indices() {
                    Some(i) => i.into_u32().collect(),
                    None => (0..positions.len() as u32).collect(),
                };
                let triangles: Vec<[u32; 3]> =
                    idx.chunks_exact(3).map(|t| [t[0], t[1], t[2]]).collect();
                let pbr = prim.material().pbr_metallic_roughness();
                let factor = pbr.base_color_factor();
                let texture = pbr.base_color_texture().and_then(|info| {
                    let data = images.get(info.texture().source().index())?;
                    gltf_rgb(data)
                });
                let uvs = reader
                    .read_tex_coords(0)
                    .map(|t| t.into_f32().collect::<Vec<_>>());
                let colours = reader
                    .read_colors(0)
                    .map(|c| c.into_rgb_f32().collect::<Vec<_>>());
                let shading = match (texture, uvs, colours) {
                    (Some(image), Some(uvs), _) if uvs.len() == positions.len() => {
                        Shading::Texture {
                            image,
                            uvs,
                            v_down: true,
                        }
                    }
                    (_, _, Some(c)) if c.len() == positions.len() => Shading::VertexColours(c),
                    _ => Shading::Constant([factor[0], factor[1], factor[2]]),
                };
                parts.push(Part {
                    positions,
                    triangles,
                    shading,
                });
            }
        }
        Ok(Self { parts })
    }

    /// Total surface area.
    pub fn area(&self) -> f32 {
        self.parts
            .iter()
            .flat_map(|p| p.triangles.iter().map(|t| tri_area(p, t)))
            .sum()
    }

    /// `count` points sampled uniformly by area on the surface with their colours, seeded.
    /// Degenerate (zero-area) triangles are never chosen; an empty or zero-area mesh gives no
    /// points.
    pub fn sample_surface(&self, count: usize, seed: u64) -> Points {
        let mut cumulative = Vec::new();
        let mut which = Vec::new();
        let mut total = 0.0f64;
        for (pi, p) in self.parts.iter().enumerate() {
            for (ti, t) in p.triangles.iter().enumerate() {
                let a = tri_area(p, t) as f64;
                if a > 0.0 && a.is_finite() {
                    total += a;
                    cumulative.push(total);
                    which.push((pi, ti));
                }
            }
        }
        if total <= 0.0 {
            return (vec![], vec![]);
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let mut pos = Vec::with_capacity(count);
        let mut col = Vec::with_capacity(count);
        for _ in 0..count {
            let x = rng.random::<f64>() * total;
            let k = cumulative.partition_point(|&c| c <= x).min(which.len() - 1);
            let (pi, ti) = which[k];
            let part = &self.parts[pi];
            let [a, b, c] = part.triangles[ti].map(|i| i as usize);
            let r1 = rng.random::<f32>().sqrt();
            let r2 = rng.random::<f32>();
            let w = [1.0 - r1, r1 * (1.0 - r2), r1 * r2];
            let p = part.positions[a] * w[0] + part.positions[b] * w[1] + part.positions[c] * w[2];
            pos.push(p.to_array());
            col.push(part.colour_at([a, b, c], w));
        }
        (pos, col)
    }
}

impl Part {
    /// The colour at barycentric weights `w` of the triangle with vertices `v`.
    fn colour_at(&self, v: [usize; 3], w: [f32; 3]) -> [f32; 3] {
        match &self.shading {
            Shading::Constant(c) => *c,
            Shading::VertexColours(cs) => {
                std::array::from_fn(|k| (0..3).map(|j| cs[v[j]][k] * w[j]).sum::<f32>())
            }
            Shading::Texture { image, uvs, v_down } => {
                let uv: [f32; 2] =
                    std::array::from_fn(|k| (0..3).map(|j| uvs[v[j]][k] * w[j]).sum::<f32>());
                let (iw, ih) = image.dimensions();
                if iw == 0 || ih == 0 {
                    return GREY;
                }
                let u = uv[0] - uv[0].floor();
                let vv = uv[1] - uv[1].floor();
                let vv = if *v_down { vv } else { 1.0 - vv };
                let x = ((u * iw as f32) as u32).min(iw - 1);
                let y = ((vv * ih as f32) as u32).min(ih - 1);
                let p = image.get_pixel(x, y);
                p.0.map(|c| c as f32 / 255.0)
            }
        }
    }
}

fn tri_area(p: &Part, t: &[u32; 3]) -> f32 {
    let get = |i: u32| p.positions.get(i as usize).copied().unwrap_or(Vec3::NAN);
    let (a, b, c) = (get(t[0]), get(t[1]), get(t[2]));
    0.5 * (b - a).cross(c - a).length()
}

fn gltf_rgb(data: &gltf::image::Data) -> Option<image::RgbImage> {
    use gltf::image::Format;
    let stride = match data.format {
        Format::R8G8B8 => 3,
        Format::R8G8B8A8 => 4,
        _ => return None,
    };
    let rgb: Vec<u8> = data
        .pixels
        .chunks_exact(stride)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    image::RgbImage::from_raw(data.width, data.height, rgb)
}

/// Point positions and their colours in [0, 1].
pub type Points = (Vec<[f32; 3]>, Vec<[f32; 3]>);

/// Read a point cloud from a PLY file's `vertex` element: `x, y, z` and, when present,
/// `red, green, blue` (integers are read as 0–255, floats as 0–1); grey otherwise.
///
/// # Errors
/// [`GeometryError`] naming the file: unreadable, not a PLY, no vertices or coordinates.
pub fn read_point_cloud(path: &Path) -> Result<Points, GeometryError> {
    use ply_rs_bw::ply::{DefaultElement, Property};
    let file = std::fs::File::open(path).map_err(|e| err(path, e.to_string()))?;
    let mut reader = std::io::BufReader::new(file);
    let ply = ply_rs_bw::parser::Parser::<DefaultElement>::new()
        .read_ply(&mut reader)
        .map_err(|e| err(path, format!("not a valid PLY file: {e}")))?;
    let verts = ply
        .payload
        .get("vertex")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| err(path, "no vertices"))?;
    let num = |p: Option<&Property>| -> Option<(f32, bool)> {
        Some(match *p? {
            Property::Char(v) => (v as f32, true),
            Property::UChar(v) => (v as f32, true),
            Property::Short(v) => (v as f32, true),
            Property::UShort(v) => (v as f32, true),
            Property::Int(v) => (v as f32, true),
            Property::UInt(v) => (v as f32, true),
            Property::Float(v) => (v, false),
            Property::Double(v) => (v as f32, false),
            _ => return None,
        })
    };
    let mut pos = Vec::with_capacity(verts.len());
    let mut col = Vec::with_capacity(verts.len());
    for (i, v) in verts.iter().enumerate() {
        let xyz = ["x", "y", "z"].map(|k| num(v.get(k)).map(|x| x.0));
        let [Some(x), Some(y), Some(z)] = xyz else {
            return Err(err(path, format!("vertex {i}: missing x, y or z")));
        };
        if !(x.is_finite() && y.is_finite() && z.is_finite()) {
            return Err(err(path, format!("vertex {i}: non-finite position")));
        }
        pos.push([x, y, z]);
        let rgb = ["red", "green", "blue"].map(|k| num(v.get(k)));
        col.push(match rgb {
            [Some(r), Some(g), Some(b)] => [r, g, b].map(|(c, int)| {
                if int {
                    (c / 255.0).clamp(0.0, 1.0)
                } else {
                    c.clamp(0.0, 1.0)
                }
            }),
            _ => GREY,
        });
    }
    Ok((pos, col))
}

/// Map points from the OBJ/glTF convention (y up, front facing +z) to the generation world
/// (z up, front facing +x): `(x, y, z) → (z, x, y)`, a proper rotation.
pub fn y_up_to_z_up(points: &mut [[f32; 3]]) {
    for p in points {
        *p = [p[2], p[0], p[1]];
    }
}

/// Centre the points' bounding box on the origin and scale so the farthest point lies at
/// `radius`. Returns `(centre, scale)` applied as `(p − centre)·scale`.
pub fn normalise(points: &mut [[f32; 3]], radius: f32) -> (Vec3, f32) {
    if points.is_empty() {
        return (Vec3::ZERO, 1.0);
    }
    let (mut lo, mut hi) = (Vec3::splat(f32::INFINITY), Vec3::splat(f32::NEG_INFINITY));
    for p in points.iter() {
        let v = Vec3::from_array(*p);
        lo = lo.min(v);
        hi = hi.max(v);
    }
    let centre = 0.5 * (lo + hi);
    let far = points
        .iter()
        .map(|p| (Vec3::from_array(*p) - centre).length())
        .fold(0.0f32, f32::max);
    let scale = if far > 0.0 { radius / far } else { 1.0 };
    for p in points.iter_mut() {
        *p = ((Vec3::from_array(*p) - centre) * scale).to_array();
    }
    (centre, scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist_to_triangle(p: Vec3, a: Vec3, b: Vec3, c: Vec3) -> f32 {
        // Distance to the plane for points whose projection falls inside (the sampled ones),
        // checked with barycentric coordinates.
        let n = (b - a).cross(c - a);
        let area2 = n.length();
        let n = n / area2;
        let d = (p - a).dot(n);
        let q = p - d * n;
        let wa = (b - q).cross(c - q).dot(n) / area2;
        let wb = (c - q).cross(a - q).dot(n) / area2;
        let wc = 1.0 - wa - wb;
        if wa >= -1e-4 && wb >= -1e-4 && wc >= -1e-4 {
            d.abs()
        } else {
            f32::INFINITY
        }
    }

    #[test]
    fn obj_samples_lie_on_the_surface_and_follow_area() {
        let dir = std::env::temp_dir().join(format!("splatdream-mesh-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("two.obj");
        // Triangle A (area 0.5) in the z = 0 plane, triangle B (area 4.5) in the x = 5 plane,
        // with vertex colours red and blue.
        std::fs::write(
            &path,
            "v 0 0 0 1 0 0\nv 1 0 0 1 0 0\nv 0 1 0 1 0 0\n\
             v 5 0 0 0 0 1\nv 5 3 0 0 0 1\nv 5 0 3 0 0 1\nf 1 2 3\nf 4 5 6\n",
        )
        .unwrap();
        let mesh = Mesh::load(&path).unwrap();
        assert!((mesh.area() - 5.0).abs() < 1e-5);
        let (pos, col) = mesh.sample_surface(20_000, 3);
        assert_eq!(pos.len(), 20_000);
        let tris = [
            [Vec3::ZERO, Vec3::X, Vec3::Y],
            [
                Vec3::new(5.0, 0.0, 0.0),
                Vec3::new(5.0, 3.0, 0.0),
                Vec3::new(5.0, 0.0, 3.0),
            ],
        ];
        let mut on_b = 0usize;
        for (p, c) in pos.iter().zip(&col) {
            let p = Vec3::from_array(*p);
            let d = tris
                .iter()
                .map(|t| dist_to_triangle(p, t[0], t[1], t[2]))
                .fold(f32::INFINITY, f32::min);
            assert!(d < 1e-5, "point {p} is {d} off the mesh");
            if p.x > 2.5 {
                on_b += 1;
                assert!(
                    (c[2] - 1.0).abs() < 1e-5 && c[0].abs() < 1e-5,
                    "colour {c:?}"
                );
            } else {
                assert!((c[0] - 1.0).abs() < 1e-5, "colour {c:?}");
            }
        }
        // Area weighting: B holds 4.5 / 5 = 90 % of the surface (σ ≈ 0.2 %).
        let frac = on_b as f64 / pos.len() as f64;
        assert!(
            (frac - 0.9).abs() < 0.01,
            "fraction on the larger triangle {frac}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn normalise_fits_the_radius() {
        let mut p = vec![[1.0, 1.0, 1.0], [3.0, 1.0, 1.0], [2.0, 5.0, 1.0]];
        normalise(&mut p, 0.5);
        let far = p
            .iter()
            .map(|q| Vec3::from_array(*q).length())
            .fold(0.0f32, f32::max);
        assert!((far - 0.5).abs() < 1e-6);
        let mut q = vec![[1.0, 2.0, 3.0]];
        y_up_to_z_up(&mut q);
        assert_eq!(q[0], [3.0, 1.0, 2.0]);
    }

    #[test]
    fn shipped_cow_meshes_load_with_texture_colours() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/spot-cow-mesh");
        for name in ["cow.obj", "cow.glb"] {
            let path = root.join(name);
            let mesh = Mesh::load(&path).unwrap();
            assert!(
                mesh.parts
                    .iter()
                    .any(|p| matches!(p.shading, Shading::Texture { .. })),
                "{name}: no texture"
            );
            let (pos, col) = mesh.sample_surface(2_000, 1);
            assert_eq!(pos.len(), 2_000);
            // The cow's texture is not uniformly grey.
            let spread = col.iter().map(|c| c[0]).fold(0.0f32, f32::max)
                - col.iter().map(|c| c[0]).fold(1.0f32, f32::min);
            assert!(spread > 0.3, "{name}: colour spread {spread}");
        }
    }
}
