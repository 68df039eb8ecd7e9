//! The differentiable lookup as a candle op: [`lookup`] applies a
//! [`LookupTable`] to a `[materials, 3, h, w]` texture tensor (level 0 only;
//! mip-mapped tables go through the pyramid's sparse path), its backward
//! the table's scatter.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

use super::LookupTable;

/// The differentiable lookup (see the module docs).
struct TextureLookup {
    table: Arc<LookupTable>,
    background: [f32; 3],
}

/// Refuses a texture of another shape than `table` reads, and a mip-mapped
/// table (this op holds level 0 only).
fn check(table: &LookupTable, dims: &[usize]) -> candle_core::Result<()> {
    let want = [
        table.materials,
        3,
        table.tex_height as usize,
        table.tex_width as usize,
    ];
    if dims != want {
        candle_core::bail!("lookup: texture must have shape {want:?} [materials, 3, height, width], got {dims:?}")
    }
    if table.has_mips() {
        candle_core::bail!(
            "lookup: a mip-mapped table needs the texture's levels (the pyramid's sparse path)"
        )
    }
    Ok(())
}

impl CustomOp1 for TextureLookup {
    fn name(&self) -> &'static str {
        "texture-lookup"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("lookup: expected an f32 texture")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("lookup: texture must be contiguous")
        };
        let t = &self.table;
        check(t, layout.shape().dims())?;
        let plane = (t.tex_width * t.tex_height) as usize;
        let out = t.gather(&data[start..end], &[(0, plane)], self.background);
        Ok((
            CpuStorage::F32(out),
            Shape::from((1, 3, t.height as usize, t.width as usize)),
        ))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let g = grad_res.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let mut grad = vec![0.0f32; arg.elem_count()];
        let plane = (self.table.tex_width * self.table.tex_height) as usize;
        self.table.scatter(&g, &mut grad, &[(0, plane)]);
        Ok(Some(Tensor::from_vec(grad, arg.shape(), arg.device())?))
    }
}

/// The image `[1, 3, height, width]` (RGB, the texture's range) that
/// `texture` (`[materials, 3, tex_height, tex_width]`, f32, CPU) shows through
/// `table`'s view, over `background`. Differentiable in `texture`.
pub fn lookup(
    texture: &Tensor,
    table: &Arc<LookupTable>,
    background: [f32; 3],
) -> candle_core::Result<Tensor> {
    check(table, texture.dims())?;
    texture.contiguous()?.apply_op1(TextureLookup {
        table: table.clone(),
        background,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_io::Image;
    use crate::lookup::fixtures::{frame, pseudo_random};
    use crate::lookup::render;
    use candle_core::{Device, Var};

    #[test]
    fn differentiable_lookup_matches_the_preview_renderer() {
        let (f, tri_material) = (frame(), [0u32, 1]);
        let data = pseudo_random(2 * 3 * 3 * 5);
        let tex = Tensor::from_vec(data.clone(), (2, 3, 3, 5), &Device::Cpu).unwrap();
        let table = Arc::new(LookupTable::new(&f, &tri_material, 2, 5, 3));
        let out = lookup(&tex, &table, [0.2, 0.4, 0.6]).unwrap();
        let images: Vec<Image> = (0..2)
            .map(|m| crate::texture::tensor_to_image(&tex.get(m).unwrap()).unwrap())
            .collect();
        let expected = render(
            &f,
            &tri_material,
            &[Some(&images[0]), Some(&images[1])],
            &[],
            [0.2, 0.4, 0.6],
        );
        let got = crate::texture::tensor_to_image(&out.get(0).unwrap()).unwrap();
        for (a, b) in got.data.iter().zip(&expected.data) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn lookup_gradient_matches_finite_differences() {
        let (f, tri_material) = (frame(), [0u32, 1]);
        let table = Arc::new(LookupTable::new(&f, &tri_material, 2, 5, 3));
        let base = pseudo_random(2 * 3 * 3 * 5);
        let weights = Tensor::from_vec(
            pseudo_random(12)
                .iter()
                .map(|v| v - 0.3)
                .collect::<Vec<_>>(),
            (1, 3, 2, 2),
            &Device::Cpu,
        )
        .unwrap();
        let loss = |t: &Tensor| {
            (lookup(t, &table, [0.1; 3]).unwrap() * &weights)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
        };
        let var = Var::from_vec(base.clone(), (2, 3, 3, 5), &Device::Cpu).unwrap();
        let g = loss(var.as_tensor())
            .backward()
            .unwrap()
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let eps = 1e-2;
        let mut nonzero = 0;
        for i in 0..base.len() {
            let f = |d: f32| {
                let mut v = base.clone();
                v[i] += d;
                loss(&Tensor::from_vec(v, (2, 3, 3, 5), &Device::Cpu).unwrap())
                    .to_scalar::<f32>()
                    .unwrap() as f64
            };
            let fd = (f(eps) - f(-eps)) / (2.0 * eps as f64);
            assert!(
                (fd - g[i] as f64).abs() < 1e-4 + 1e-3 * fd.abs(),
                "texel {i}: fd {fd} vs {}",
                g[i]
            );
            nonzero += (g[i] != 0.0) as usize;
        }
        assert!(
            nonzero > 10,
            "the check must exercise real gradients ({nonzero} non-zero)"
        );
    }
}
