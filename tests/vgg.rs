//! VGG: op gradients against finite differences, fast path against candle's ops, weight import
//! verification on small fixtures, and a real-weights check (needs `texstyle weights fetch`).

mod common;

use candle_core::{Device, Tensor};
use texstyle::vgg::ops::conv3x3::{DirectConv, Tile, WinogradConv};
use texstyle::loss::{gram, gram_backward, ContentTerm, NnfmTargets, Objective, StyleTerm, NNFM_LAYERS, STYLE_LAYERS};
use texstyle::rng::SplitMix;
use texstyle::vgg::ops::{maxpool, Act};
use texstyle::vgg::weights::{self, Arch, Preprocess, VggWeights, WeightsError};
use texstyle::vgg::{generic, layers, Backend, Layer, Precision, Vgg, VggError};

fn rand_act(rng: &mut SplitMix, h: usize, w: usize, c: usize) -> Act {
    Act::from_chw(c, h, w, &(0..h * w * c).map(|_| rng.normal()).collect::<Vec<_>>())
}

fn dot(a: &Act, b: &Act) -> f64 {
    a.data.iter().zip(&b.data).map(|(x, y)| *x as f64 * *y as f64).sum()
}

/// Checks `grad` against central differences of `loss` at a few image positions of `x`.
fn check_fd(x: &Act, grad: &Act, loss: &dyn Fn(&Act) -> f64, eps: f32, tol: f64, what: &str) {
    let mut rng = SplitMix(77);
    for _ in 0..12 {
        let (y, xx, c) = ((rng.uniform() * x.h as f32) as usize, (rng.uniform() * x.w as f32) as usize, (rng.uniform() * x.c as f32) as usize);
        let i = x.at(y, xx) + c;
        let (mut p, mut m) = (x.clone(), x.clone());
        p.data[i] += eps;
        m.data[i] -= eps;
        let fd = (loss(&p) - loss(&m)) / (2.0 * eps as f64);
        let g = grad.data[i] as f64;
        assert!((fd - g).abs() <= tol * (1.0 + g.abs().max(fd.abs())), "{what}: at ({y},{xx},{c}) fd {fd} vs grad {g}");
    }
}

#[test]
fn conv_and_relu_grad_matches_fd() {
    let mut rng = SplitMix(1);
    let (h, w, cin, cout) = (6, 7, 16, 32);
    let x = rand_act(&mut rng, h, w, cin);
    let r = rand_act(&mut rng, h, w, cout);
    let wt: Vec<f32> = (0..cout * cin * 9).map(|_| rng.normal() * 0.2).collect();
    let b: Vec<f32> = (0..cout).map(|_| rng.normal() * 0.1).collect();
    for tile in [Tile::F2, Tile::F4] {
        let fwd = WinogradConv::new(tile, &wt, Some(&b), cout, cin);
        let bwd = WinogradConv::backward_of(tile, &wt, cout, cin);
        // Conv alone, L = <conv(x) + b, r>: linear, so a large eps is exact and beats rounding.
        let loss = |x: &Act| {
            let mut a = Act::zeros(h, w, cout);
            fwd.forward(x, &mut a, false);
            dot(&a, &r)
        };
        let mut dx = Act::zeros(h, w, cin);
        bwd.forward(&r, &mut dx, false);
        check_fd(&x, &dx, &loss, 0.5, 1e-3, &format!("conv {tile:?}"));
    }
    // Conv + ReLU, L = <relu(conv(x) + b), r>; dL/dx = conv_bwd(r ⊙ [a > 0]). F(2,3) keeps the
    // rounding noise low enough for the small eps that stays on one side of the kinks.
    let fwd = WinogradConv::new(Tile::F2, &wt, Some(&b), cout, cin);
    let loss = |x: &Act| {
        let mut a = Act::zeros(h, w, cout);
        fwd.forward(x, &mut a, true);
        dot(&a, &r)
    };
    let mut a = Act::zeros(h, w, cout);
    fwd.forward(&x, &mut a, true);
    let mut gz = r.clone();
    gz.data.iter_mut().zip(&a.data).for_each(|(g, a)| *g = if *a > 0.0 { *g } else { 0.0 });
    let mut dx = Act::zeros(h, w, cin);
    WinogradConv::backward_of(Tile::F2, &wt, cout, cin).forward(&gz, &mut dx, false);
    check_fd(&x, &dx, &loss, 1e-3, 1e-2, "conv+relu");
    // The RGB first layer (direct conv) and its 3-channel input gradient.
    let x3 = rand_act(&mut rng, h, w, 3);
    let r64 = rand_act(&mut rng, h, w, 16);
    let w1: Vec<f32> = (0..16 * 3 * 9).map(|_| rng.normal()).collect();
    let fwd = DirectConv::new(&w1, None, 16, 3);
    let loss = |x: &Act| {
        let mut a = Act::zeros(h, w, 16);
        fwd.forward(x, &mut a, false);
        dot(&a, &r64)
    };
    let mut dx = Act::zeros(h, w, 3);
    DirectConv::backward_of(&w1, 16, 3).forward(&r64, &mut dx, false);
    check_fd(&x3, &dx, &loss, 1e-2, 2e-3, "direct conv");
}

#[test]
fn maxpool_grad_matches_fd_and_tie_rule() {
    let mut rng = SplitMix(2);
    let (h, w, c) = (6, 8, 3);
    let x = rand_act(&mut rng, h, w, c);
    let r = rand_act(&mut rng, h / 2, w / 2, c);
    let loss = |x: &Act| {
        let mut p = Act::zeros(h / 2, w / 2, c);
        maxpool::maxpool(x, &mut p);
        dot(&p, &r)
    };
    let mut g = Act::zeros(h, w, c);
    maxpool::maxpool_backward(&x, &r, &mut g);
    // Distinct random values: FD is well defined (eps far below the gaps' typical size).
    check_fd(&x, &g, &loss, 1e-4, 1e-2, "maxpool");

    // Ties: the gradient goes to the FIRST maximum in row-major order, fully (1.0, not shared).
    let win = |v: [f32; 4]| {
        let a = Act::from_chw(1, 2, 2, &v);
        let one = Act::from_chw(1, 1, 1, &[1.0]);
        let mut g = Act::zeros(2, 2, 1);
        maxpool::maxpool_backward(&a, &one, &mut g);
        g.to_chw()
    };
    assert_eq!(win([1.0, 2.0, 3.0, 4.0]), [0.0, 0.0, 0.0, 1.0], "max gets 1.0 (candle 0.11.1 gives 0.25)");
    assert_eq!(win([5.0, 5.0, 5.0, 5.0]), [1.0, 0.0, 0.0, 0.0]);
    assert_eq!(win([0.0, 7.0, 7.0, 1.0]), [0.0, 1.0, 0.0, 0.0]);
    assert_eq!(win([0.0, 1.0, 7.0, 7.0]), [0.0, 0.0, 1.0, 0.0]);
    // The generic (candle ops) pool follows the same rule.
    let dev = Device::Cpu;
    for v in [[1.0f32, 2.0, 3.0, 4.0], [5.0; 4], [0.0, 7.0, 7.0, 1.0], [0.0, 1.0, 7.0, 7.0]] {
        let var = candle_core::Var::from_tensor(&Tensor::from_slice(&v, (1, 1, 2, 2), &dev).unwrap()).unwrap();
        let y = generic::maxpool2x2(var.as_tensor()).unwrap();
        assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0], v.iter().cloned().fold(f32::MIN, f32::max));
        let gs = y.sum_all().unwrap().backward().unwrap();
        let got = gs.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(got, win(v), "generic pool on {v:?}");
    }
}

/// The Gram's backward (in `loss`) against central differences, and the Gram against its
/// defining sum.
#[test]
fn gram_grad_matches_fd() {
    let mut rng = SplitMix(3);
    let (h, w, c) = (5, 4, 16);
    let dev = Device::Cpu;
    let fv: Vec<f32> = (0..c * h * w).map(|_| rng.normal()).collect();
    let d = Tensor::from_vec((0..c * c).map(|_| rng.normal()).collect::<Vec<f32>>(), (1, c, c), &dev).unwrap(); // not symmetric on purpose
    let f = Tensor::from_vec(fv.clone(), (1, c, h, w), &dev).unwrap();
    let loss = |f: &Tensor| (gram(f).unwrap() * &d).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() as f64;
    let g = gram_backward(&f, &d).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let eps = 1e-2f32;
    for i in (0..fv.len()).step_by(7) {
        let (mut p, mut m) = (fv.clone(), fv.clone());
        p[i] += eps;
        m[i] -= eps;
        let t = |v: Vec<f32>| Tensor::from_vec(v, (1, c, h, w), &dev).unwrap();
        let fd = (loss(&t(p)) - loss(&t(m))) / (2.0 * eps as f64);
        assert!((fd - g[i] as f64).abs() <= 2e-3 * (1.0 + fd.abs()), "gram at {i}: fd {fd} vs grad {}", g[i]);
    }
    // Normalization F Fᵀ / (C·H·W), against the defining sum.
    let got = gram(&f).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for i in 0..c {
        for j in 0..c {
            let s: f64 = (0..h * w).map(|p| fv[i * h * w + p] as f64 * fv[j * h * w + p] as f64).sum::<f64>() / (c * h * w) as f64;
            assert!((got[i * c + j] as f64 - s).abs() < 1e-5, "G[{i},{j}] {} vs {s}", got[i * c + j]);
        }
    }
}

fn small_vgg(backend: Backend) -> Vgg {
    small_vgg_pre(backend, Preprocess::CaffeBgr)
}

fn small_vgg_pre(backend: Backend, pre: Preprocess) -> Vgg {
    let w = VggWeights::random(Arch::Vgg16, pre, 11);
    Vgg::from_weights(&w, &Device::Cpu, backend).unwrap()
}

fn image(seed: u64, b: usize, h: usize, w: usize) -> Tensor {
    let mut rng = SplitMix(seed);
    Tensor::from_vec((0..b * 3 * h * w).map(|_| rng.uniform()).collect::<Vec<f32>>(), (b, 3, h, w), &Device::Cpu).unwrap()
}

fn objective(vgg: &Vgg, img: &Tensor) -> Objective {
    let style = layers(&STYLE_LAYERS).unwrap();
    let targets = grams(vgg, &image(99, 1, img.dim(2).unwrap(), img.dim(3).unwrap()), &style);
    // Several content layers (`--content-layers`), one of them also a style layer: the
    // backward must add both seeds there.
    let content = layers(&["conv4_2", "relu2_2", "relu3_1"]).unwrap();
    let cts = vgg.features(&image(98, 1, img.dim(2).unwrap(), img.dim(3).unwrap()), &content).unwrap();
    Objective {
        style: style.iter().zip(targets).map(|(l, t)| StyleTerm { layer: *l, target: t.get(0).unwrap(), weight: 1e3 }).collect(),
        content: content.iter().zip(cts).map(|(&layer, target)| ContentTerm { layer, target, weight: 1e-6 }).collect(),
        nnfm: Vec::new(),
    }
}

fn grams(vgg: &Vgg, img: &Tensor, layers: &[Layer]) -> Vec<Tensor> {
    vgg.features(img, layers).unwrap().iter().map(|f| gram(f).unwrap()).collect()
}

/// The objective's loss written out again in f64 loops from the features (not through
/// `loss`'s tensor code): Σ_style w Σ (G − T)² + w_c Σ (F − T_c)², G = F Fᵀ / (C·H·W).
fn loss_by_hand(vgg: &Vgg, img: &Tensor, obj: &Objective) -> f64 {
    let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let mut total = 0.0f64;
    for s in &obj.style {
        let f = vgg.features(img, &[s.layer]).unwrap().remove(0);
        let (b, c, h, w) = f.dims4().unwrap();
        let (fv, tv) = (v(&f), v(&s.target));
        for bi in 0..b {
            let x = &fv[bi * c * h * w..][..c * h * w];
            for i in 0..c {
                for j in 0..c {
                    let g = (0..h * w).map(|p| x[i * h * w + p] as f64 * x[j * h * w + p] as f64).sum::<f64>() / (c * h * w) as f64;
                    total += s.weight as f64 * (g - tv[i * c + j] as f64).powi(2);
                }
            }
        }
    }
    for ct in &obj.content {
        let f = vgg.features(img, &[ct.layer]).unwrap().remove(0);
        let t = ct.target.broadcast_as(f.shape()).unwrap();
        total += v(&f).iter().zip(v(&t)).map(|(a, b)| ct.weight as f64 * (*a as f64 - b as f64).powi(2)).sum::<f64>();
    }
    total
}

fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-30);
    a.iter().zip(&b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// The fast CPU path against the generic path (candle's conv2d etc., the code used on CUDA/Metal),
/// on VGG16-shaped layers at a small size, batch 2, odd width (pools drop a column).
#[test]
fn fast_matches_generic_features_loss_and_grad() {
    let (fast, gen) = (small_vgg(Backend::Fast), small_vgg(Backend::Generic));
    let img = image(5, 2, 32, 37);
    let ls = layers(&["relu1_1", "conv1_2", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "conv4_2", "relu5_1"]).unwrap();
    let (ff, fg) = (fast.features(&img, &ls).unwrap(), gen.features(&img, &ls).unwrap());
    for ((a, b), l) in ff.iter().zip(&fg).zip(&ls) {
        assert_eq!(a.dims(), b.dims(), "{l}");
        assert!(max_rel(a, b) < 1e-4, "{l}: {}", max_rel(a, b));
    }
    let obj = objective(&fast, &img);
    let (pf, gf) = obj.loss_and_grad(&fast, &img).unwrap();
    let (pg, gg) = obj.loss_and_grad(&gen, &img).unwrap();
    assert!((pf.total - pg.total).abs() < 1e-3 * pg.total, "{} vs {}", pf.total, pg.total);
    assert!(pf.content > 0.0 && pf.style > 0.0);
    assert_eq!(gf.dims(), [2, 3, 32, 37]);
    assert!(max_rel(&gf, &gg) < 2e-3, "grad: {}", max_rel(&gf, &gg));
    // Too small for relu5_1 (4 pools): a shape error, not a panic.
    let e = fast.features(&image(1, 1, 8, 8), &ls).unwrap_err();
    assert!(e.to_string().contains(">= 16"), "{e}");
    // The loss, forward only and with the gradient, against the same formula written out in
    // f64 loops from the features.
    let by_hand = loss_by_hand(&fast, &img, &obj);
    for (what, got) in [("fast fwd+bwd", pf.total), ("fast fwd", obj.loss(&fast, &img).unwrap().total), ("generic fwd", obj.loss(&gen, &img).unwrap().total)] {
        assert!((got as f64 - by_hand).abs() < 1e-4 * by_hand, "{what}: {got} vs {by_hand} by hand");
    }
}

/// The whole loss's gradient against central differences along random directions.
#[test]
fn loss_grad_matches_fd() {
    let vgg = small_vgg_pre(Backend::Fast, Preprocess::TorchvisionRgb);
    let img = image(6, 1, 24, 24);
    let obj = objective(&vgg, &img);
    let (_, g) = obj.loss_and_grad(&vgg, &img).unwrap();
    // Along the gradient itself the slope is largest against the f32 rounding noise of the loss;
    // random directions get a looser bound.
    let gmax = g.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() as f64;
    for seed in 0..3u64 {
        let (dir, tol) = match seed {
            0 => ((&g / gmax).unwrap(), 1e-2),
            _ => ((image(100 + seed, 1, 24, 24) - 0.5).unwrap(), 6e-2),
        };
        // Small enough that few ReLU / pool switches happen along the segment.
        let eps = 1e-3;
        let l = |s: f64| obj.loss(&vgg, &(&img + (&dir * s).unwrap()).unwrap()).unwrap().total as f64;
        let fd = (l(eps) - l(-eps)) / (2.0 * eps);
        let an = (&g * &dir).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() as f64;
        assert!((fd - an).abs() < tol * an.abs().max(fd.abs()), "direction {seed}: fd {fd} vs analytic {an}");
    }
}

/// Several content layers, one of them also a style layer (the backward adds both seeds there),
/// each weighted as `loss::objective` does (relative error): the gradient against central
/// differences, and each term must count (the loss moves when any one target moves).
#[test]
fn multi_layer_content_grad_matches_fd() {
    let vgg = small_vgg_pre(Backend::Fast, Preprocess::TorchvisionRgb);
    let img = image(8, 1, 24, 24);
    let mut obj = objective(&vgg, &img);
    obj.style.retain(|s| s.layer.to_string() == "relu3_1");
    let norm = |t: &Tensor| t.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
    obj.style[0].weight = 1.0 / norm(&obj.style[0].target);
    for c in &mut obj.content {
        c.weight = 1.0 / norm(&c.target);
    }
    let (parts, g) = obj.loss_and_grad(&vgg, &img).unwrap();
    assert!(parts.content > parts.style, "the content terms must dominate: {parts:?}");
    let gmax = g.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() as f64;
    for seed in 0..3u64 {
        // Along the gradient, then along the gradient on a random half of the inputs (large
        // slopes against the loss's f32 rounding, yet each pixel's own value is tested).
        let dir = match seed {
            0 => (&g / gmax).unwrap(),
            _ => ((&g * image(200 + seed, 1, 24, 24).ge(0.5).unwrap().to_dtype(candle_core::DType::F32).unwrap()).unwrap() / gmax).unwrap(),
        };
        let tol = 1e-2;
        let eps = 1e-3;
        let l = |s: f64| obj.loss(&vgg, &(&img + (&dir * s).unwrap()).unwrap()).unwrap().total as f64;
        let fd = (l(eps) - l(-eps)) / (2.0 * eps);
        let an = (&g * &dir).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() as f64;
        assert!((fd - an).abs() < tol * an.abs().max(fd.abs()), "direction {seed}: fd {fd} vs analytic {an}");
    }
    for i in 0..obj.content.len() {
        let mut moved = obj.clone();
        moved.content[i].target = (&moved.content[i].target * 0.5).unwrap();
        assert!(moved.loss(&vgg, &img).unwrap().content > parts.content * 1.01, "content term {i} does not count");
    }
}

/// `G_used` from the hook sets the residual while the gradient is taken through `G_now`:
/// `G_used = G_now + D` (D = 0.3 T, constant) must give the loss and gradient of the plain objective with
/// target `T − D`, and differ from the plain objective with target `T`.
#[test]
fn gram_hook_uses_residual_of_g_used() {
    let vgg = small_vgg(Backend::Fast);
    let img = image(7, 1, 16, 16);
    let mut obj = objective(&vgg, &img);
    obj.content = Vec::new();
    obj.style.truncate(2);
    let d: Vec<Tensor> = obj.style.iter().map(|s| (&s.target * 0.3).unwrap()).collect();
    let (p, g) = obj.loss_and_grad_with(&vgg, &img, &mut |i, g_now| Ok((g_now + &d[i])?)).unwrap();
    let mut shifted = obj.clone();
    for (s, d) in shifted.style.iter_mut().zip(&d) {
        s.target = (&s.target - d).unwrap();
    }
    let (ps, gs) = shifted.loss_and_grad(&vgg, &img).unwrap();
    assert!((p.total - ps.total).abs() < 1e-4 * ps.total, "{} vs {}", p.total, ps.total);
    assert!(max_rel(&g, &gs) < 1e-4, "hook gradient vs shifted target: {}", max_rel(&g, &gs));
    let (p0, g0) = obj.loss_and_grad(&vgg, &img).unwrap();
    assert!((p0.total - p.total).abs() > 0.1 * p0.total, "the hook changed nothing: {} vs {}", p0.total, p.total);
    assert!(max_rel(&g0, &g) > 0.1, "the hook's residual does not reach the gradient");
    assert_eq!(p.grams[0].dims(), [1, 64, 64]);
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn weights_file_roundtrip_and_rejections() {
    let dir = tmp();
    let good = dir.path().join("good.safetensors");
    let w = VggWeights::random(Arch::Vgg16, Preprocess::TorchvisionRgb, 3);
    w.save(&good, "test fixture").unwrap();
    let back = VggWeights::load(&good).unwrap();
    assert_eq!((back.arch, back.preprocess), (Arch::Vgg16, Preprocess::TorchvisionRgb));
    assert_eq!(back.convs[12].weight, w.convs[12].weight);
    assert_eq!(back.sha256(), w.sha256());

    // One float altered in the data: the checksum in the metadata catches it.
    let mut bytes = std::fs::read(&good).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0x40;
    let altered = dir.path().join("altered.safetensors");
    std::fs::write(&altered, &bytes).unwrap();
    let e = VggWeights::load(&altered).unwrap_err();
    assert!(matches!(e, WeightsError::Checksum { .. }), "{e}");
    assert!(e.to_string().contains("altered.safetensors") && e.to_string().contains("checksum"), "{e}");

    // Truncated: rejected as not a valid safetensors file, naming it.
    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..n / 2]).unwrap();
    let e = VggWeights::load(&truncated).unwrap_err();
    assert!(matches!(e, WeightsError::Format { .. }) && e.to_string().contains("truncated.safetensors"), "{e}");

    // A consistent file that claims to be the Caffe VGG16 but is not: known values reject it.
    let fake = dir.path().join("fake-caffe.safetensors");
    let mut wc = w.clone();
    wc.preprocess = Preprocess::CaffeBgr;
    wc.save(&fake, "fake").unwrap();
    let e = VggWeights::load(&fake).unwrap_err();
    assert!(matches!(e, WeightsError::Value { .. }) && e.to_string().contains("features.0.weight"), "{e}");

    // Wrong shape at a key: error names file, key and both shapes.
    let bad_shape = dir.path().join("shape.safetensors");
    let t = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![64, 3, 2, 2], &[0u8; 64 * 3 * 4 * 4]).unwrap();
    std::fs::write(&bad_shape, safetensors::serialize([("features.0.weight", t)], None).unwrap()).unwrap();
    let e = VggWeights::load(&bad_shape).unwrap_err().to_string();
    assert!(e.contains("features.0.weight") && e.contains("[64, 3, 2, 2]") && e.contains("[64, 3, 3, 3]"), "{e}");

    // Missing file: the message says how to get weights.
    let e = Vgg::load(Some(&dir.path().join("nope.safetensors")), &Device::Cpu).err().unwrap();
    assert!(matches!(e, VggError::Weights(WeightsError::Missing { .. })));
    assert!(e.to_string().contains("texstyle weights fetch"), "{e}");
}

/// Real ImageNet weights (CI runs `texstyle weights fetch` first). Fails when they are missing.
#[test]
fn real_weights_respond_like_imagenet_vgg() {
    let path = weights::default_weights_path().unwrap();
    let vgg = Vgg::load(None, &Device::Cpu).unwrap_or_else(|e| {
        panic!("real VGG16 weights needed at {}: {e}", path.display())
    });
    let w = VggWeights::load(&path).unwrap();
    assert_eq!(w.sha256(), weights::CAFFE_VGG16_SHA256);
    let s = 64;
    let img = |f: &dyn Fn(usize, usize, usize) -> f32| {
        let v: Vec<f32> = (0..3 * s * s).map(|i| f(i / (s * s), (i / s) % s, i % s)).collect();
        Tensor::from_vec(v, (1, 3, s, s), &Device::Cpu).unwrap()
    };
    let flat = img(&|_, _, _| 0.5);
    let vstripes = img(&|_, _, x| if (x / 4) % 2 == 0 { 0.1 } else { 0.9 });
    let hstripes = img(&|_, y, _| if (y / 4) % 2 == 0 { 0.1 } else { 0.9 });
    let style = layers(&STYLE_LAYERS).unwrap();
    let (gf, gv, gh) = (grams(&vgg, &flat, &style), grams(&vgg, &vstripes, &style), grams(&vgg, &hstripes, &style));
    let frob = |t: &Tensor| t.sqr().unwrap().sum_all().unwrap().sqrt().unwrap().to_scalar::<f32>().unwrap();
    for (i, l) in style.iter().enumerate() {
        let d = frob(&(&gv[i] - &gf[i]).unwrap()) / frob(&gv[i]);
        assert!(d > 0.3, "{l}: Gram of stripes ~ Gram of flat ({d})");
    }
    // relu1_1 has oriented edge detectors: some channels answer vertical stripes far more than
    // horizontal ones and vice versa; on the flat image (away from the zero-padded border) every
    // channel is constant.
    let f1 = |t: &Tensor| vgg.features(t, &style[..1]).unwrap().remove(0).narrow(2, 4, s - 8).unwrap().narrow(3, 4, s - 8).unwrap();
    let (fv, fh, ff) = (f1(&vstripes), f1(&hstripes), f1(&flat));
    let chan_mean = |t: &Tensor| t.mean_keepdim(2).unwrap().mean_keepdim(3).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let (mv, mh) = (chan_mean(&fv), chan_mean(&fh));
    let sel: Vec<f32> = mv.iter().zip(&mh).map(|(v, h)| (v - h) / (v + h + 1e-3)).collect();
    assert!(sel.iter().any(|&x| x > 0.5) && sel.iter().any(|&x| x < -0.5), "no oriented channels: {sel:?}");
    let spread = |t: &Tensor| {
        let mx = t.max_keepdim(3).unwrap().max_keepdim(2).unwrap();
        let mn = t.min_keepdim(3).unwrap().min_keepdim(2).unwrap();
        (mx - mn).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
    };
    assert!(spread(&ff).iter().all(|&d| d < 1e-3), "flat image: relu1_1 not constant");
    assert!(spread(&fv).iter().cloned().fold(0.0, f32::max) > 10.0, "stripes: no strong relu1_1 response");
    // Horizontal and vertical stripes have the same relu1_1 Gram energy only up to orientation:
    // their Grams differ, but a 90° rotation of the same pattern keeps its overall scale.
    let (nv, nh) = (frob(&gv[0]), frob(&gh[0]));
    assert!((nv / nh - 1.0).abs() < 0.5, "{nv} vs {nh}");
    assert!(frob(&(&gv[0] - &gh[0]).unwrap()) / nv > 0.05);

    // Preprocessing (BGR order, 0–255, mean subtraction): the ImageNet mean colour, given as RGB
    // in [0, 1], must reach conv1_1 as exactly zero, so relu1_1 = relu(bias) everywhere. Swapped
    // channels (R/B means differ by 20/255) or a missing scale/mean would break this.
    let mean_rgb = [123.68f32 / 255.0, 116.779 / 255.0, 103.939 / 255.0];
    let mean_img = img(&|c, _, _| mean_rgb[c]);
    let f = vgg.features(&mean_img, &style[..1]).unwrap().remove(0);
    let b1: Vec<f32> = w.convs[0].bias.iter().map(|b| b.max(0.0)).collect();
    let got = f.max_keepdim(3).unwrap().max_keepdim(2).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let got_min = f.min_keepdim(3).unwrap().min_keepdim(2).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for c in 0..64 {
        assert!((got[c] - b1[c]).abs() < 1e-3 && (got_min[c] - b1[c]).abs() < 1e-3, "channel {c}: {}..{} vs relu(bias) {}", got_min[c], got[c], b1[c]);
    }
    let swapped = img(&|c, _, _| mean_rgb[2 - c]);
    let fs = vgg.features(&swapped, &style[..1]).unwrap().remove(0);
    assert!((fs - &f).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() > 1.0, "channel order has no effect?");
}

/// A user's torchvision-layout file, as timm/torchvision export it: `features.N.weight/bias`
/// only, no texstyle metadata. VGG19 is told apart from VGG16 by its keys; the preprocessing
/// defaults to torchvision's; the network runs to relu5_1 and the content layer.
#[test]
fn user_torchvision_files_load_for_vgg16_and_vgg19() {
    for arch in [Arch::Vgg16, Arch::Vgg19] {
        let dir = tmp();
        let path = dir.path().join("user.safetensors");
        let w = VggWeights::random(arch, Preprocess::TorchvisionRgb, 5);
        let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = w
            .convs
            .iter()
            .flat_map(|c| {
                let k = &c.keys;
                let shape_w = vec![k.out_channels, k.in_channels, 3, 3];
                [
                    (format!("{}.weight", k.torchvision), bytemuck::cast_slice(&c.weight).to_vec(), shape_w),
                    (format!("{}.bias", k.torchvision), bytemuck::cast_slice(&c.bias).to_vec(), vec![k.out_channels]),
                ]
            })
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
            .iter()
            .map(|(n, b, s)| (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap()))
            .collect();
        std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();

        let back = VggWeights::load(&path).unwrap();
        assert_eq!((back.arch, back.preprocess), (arch, Preprocess::TorchvisionRgb), "{arch:?}");
        assert_eq!(back.convs.len(), w.convs.len());
        let vgg = Vgg::load(Some(&path), &Device::Cpu).unwrap();
        let feats = vgg.features(&image(1, 1, 32, 32), &layers(&["relu5_1", "relu4_2"]).unwrap()).unwrap();
        assert_eq!(feats[0].dims(), [1, 512, 2, 2], "{arch:?}");
        assert_eq!(feats[1].dims(), [1, 512, 4, 4], "{arch:?}");
    }
}

/// Each fast conv against candle's stock `conv2d` (+ bias) on every VGG16 layer shape, with the
/// kernel the network uses for it (direct for RGB, Winograd F(4,3) up to 256 channels, F(2,3)
/// above). Error relative to the largest output, as the convs' outputs span orders of magnitude.
#[test]
fn fast_convs_match_candle_conv2d_on_vgg_shapes() {
    let mut rng = SplitMix(17);
    let (h, w) = (10, 12);
    for (cin, cout) in [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512), (512, 512)] {
        let x: Vec<f32> = (0..cin * h * w).map(|_| rng.uniform()).collect();
        let wt: Vec<f32> = (0..cout * cin * 9).map(|_| rng.normal() * (2.0 / (cin * 9) as f32).sqrt()).collect();
        let b: Vec<f32> = (0..cout).map(|_| rng.normal() * 0.1).collect();
        let mut out = Act::zeros(h, w, cout);
        let input = Act::from_chw(cin, h, w, &x);
        let (name, tol) = if cin < 16 {
            DirectConv::new(&wt, Some(&b), cout, cin).forward(&input, &mut out, false);
            ("direct", 1e-6)
        } else {
            let tile = texstyle::vgg::net::tile_for(cin, cout);
            WinogradConv::new(tile, &wt, Some(&b), cout, cin).forward(&input, &mut out, false);
            (if tile == Tile::F4 { "F(4,3)" } else { "F(2,3)" }, 1e-5)
        };
        let xt = Tensor::from_vec(x, (1, cin, h, w), &Device::Cpu).unwrap();
        let wt = Tensor::from_vec(wt, (cout, cin, 3, 3), &Device::Cpu).unwrap();
        let bt = Tensor::from_vec(b, (1, cout, 1, 1), &Device::Cpu).unwrap();
        let reference = xt.conv2d(&wt, 1, 1, 1, 1).unwrap().broadcast_add(&bt).unwrap();
        let reference = reference.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let got = out.to_chw();
        let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let err = got.iter().zip(&reference).fold(0.0f32, |m, (a, b)| m.max((a - b).abs())) / scale;
        eprintln!("{cin}->{cout} {name}: max error {err:.2e} of the largest output");
        assert!(err <= tol, "{cin}->{cout} {name}: error {err:.2e} > {tol:.0e}");
    }
}

/// bf16 conv products against f32 on the real network and the whole style + content objective
/// (128² views of smooth colour fields with fine noise, targets from another such image): the
/// loss within 3 % and the image gradient pointing the same way (cosine > 0.98). On a CPU
/// without AVX512-BF16 there is no bf16 network to compare: it checks the refusal instead, typed
/// in the library and one clear line (exit code 2) from the command.
#[test]
fn bf16_network_stays_near_f32_on_real_weights() {
    if !texstyle::simd::bf16_supported() {
        assert_eq!(Precision::best(), Precision::F32);
        match Vgg::load_with(None, &Device::Cpu, Precision::Bf16) {
            Err(VggError::Bf16Unsupported) => {}
            Err(e) => panic!("bf16 refused with the wrong error: {e}"),
            Ok(_) => panic!("a bf16 network was built on a CPU without AVX512-BF16"),
        }
        let dir = tempfile::tempdir().unwrap();
        let (mesh, style, out) = (common::asset_mesh("spot"), common::style_path(), dir.path().join("out"));
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_texstyle"))
            .args([mesh.to_str().unwrap(), "--style", style.to_str().unwrap(), "--precision", "bf16", "--out", out.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.starts_with("texstyle: error: ") && err.contains("--precision bf16 needs a CPU with AVX512-BF16"), "{err}");
        assert!(err.contains("--precision f32") && err.lines().count() == 1, "{err}");
        assert!(!out.exists());
        return;
    }
    let path = weights::default_weights_path().unwrap();
    let load = |p| Vgg::load_with(None, &Device::Cpu, p).unwrap_or_else(|e| panic!("real VGG16 weights needed at {}: {e}", path.display()));
    let (exact, bf16) = (load(Precision::F32), load(Precision::Bf16));
    assert_eq!((exact.precision(), bf16.precision()), (Precision::F32, Precision::Bf16));
    let s = 128;
    let picture = |seed: u64| {
        let mut rng = SplitMix(seed);
        let (fx, fy) = (rng.uniform() * 0.2 + 0.05, rng.uniform() * 0.2 + 0.05);
        let v: Vec<f32> = (0..3 * s * s)
            .map(|i| {
                let (c, y, x) = (i / (s * s), (i / s) % s, i % s);
                let smooth = 0.5 + 0.3 * ((x as f32 * fx + c as f32).sin() * (y as f32 * fy).cos());
                (smooth + 0.1 * rng.normal()).clamp(0.0, 1.0)
            })
            .collect();
        Tensor::from_vec(v, (1, 3, s, s), &Device::Cpu).unwrap()
    };
    let (img, target) = (picture(1), picture(2));
    let style = layers(&STYLE_LAYERS).unwrap();
    let content: Layer = "relu4_2".parse().unwrap();
    let obj = Objective {
        style: style.iter().zip(grams(&exact, &target, &style)).map(|(l, t)| StyleTerm { layer: *l, target: t.get(0).unwrap(), weight: 1e3 }).collect(),
        content: vec![ContentTerm { layer: content, target: exact.features(&picture(3), &[content]).unwrap().remove(0), weight: 1e-6 }],
        nnfm: Vec::new(),
    };
    let (pe, ge) = obj.loss_and_grad(&exact, &img).unwrap();
    let (pb, gb) = obj.loss_and_grad(&bf16, &img).unwrap();
    let rel = (pb.total - pe.total).abs() / pe.total;
    let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let (a, b) = (v(&ge), v(&gb));
    let dot = |p: &[f32], q: &[f32]| p.iter().zip(q).map(|(x, y)| *x as f64 * *y as f64).sum::<f64>();
    let cos = dot(&a, &b) / (dot(&a, &a) * dot(&b, &b)).sqrt();
    eprintln!("bf16 vs f32: loss {} vs {} ({rel:.2e}), gradient cosine {cos:.5}", pb.total, pe.total);
    assert!(rel < 3e-2 && cos > 0.98, "loss {rel:.2e} apart, gradient cosine {cos:.5}");
    assert!(rel > 0.0, "the bf16 network gave f32's loss bit for bit: it did not run in bf16");
}

/// NNFM terms of `painting` at ARF's layers, every painting position kept.
fn nnfm_objective(vgg: &Vgg, painting: &Tensor, weight: f32) -> Objective {
    let ls = layers(&NNFM_LAYERS).unwrap();
    Objective { nnfm: NnfmTargets::new(vgg, painting, weight, &ls, usize::MAX).unwrap().terms, ..Default::default() }
}

/// The NNFM value written out again in f64 loops from the features (not through `loss`'s
/// code): per layer, the mean over view positions of `1 − max_j cos(f_p, s_j)`, the search by
/// brute force over every painting position.
fn nnfm_by_hand(vgg: &Vgg, img: &Tensor, painting: &Tensor, weight: f64) -> f64 {
    let ls = layers(&NNFM_LAYERS).unwrap();
    let rows = |t: &Tensor| -> (Vec<Vec<f64>>, usize) {
        let (_, c, h, w) = t.dims4().unwrap();
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        ((0..h * w).map(|p| (0..c).map(|k| v[k * h * w + p] as f64).collect()).collect(), c)
    };
    let unit = |r: &[f64]| {
        let n = r.iter().map(|x| x * x).sum::<f64>().sqrt();
        r.iter().map(|x| if n > 0.0 { x / n } else { 0.0 }).collect::<Vec<f64>>()
    };
    let (fv, fp) = (vgg.features(img, &ls).unwrap(), vgg.features(painting, &ls).unwrap());
    let mut total = 0.0;
    for (f, s) in fv.iter().zip(&fp) {
        let ((fr, _), (sr, _)) = (rows(f), rows(s));
        let s_unit: Vec<Vec<f64>> = sr.iter().map(|r| unit(r)).collect();
        let mean = fr.iter().map(|r| {
            let u = unit(r);
            let best = s_unit.iter().map(|s| s.iter().zip(&u).map(|(a, b)| a * b).sum::<f64>()).fold(f64::MIN, f64::max);
            1.0 - best
        }).sum::<f64>() / fr.len() as f64;
        total += weight / ls.len() as f64 * mean;
    }
    total
}

/// NNFM's value against the formula by hand, on both backends; its gradient against the
/// generic backend's and against central differences along the gradient, random directions and
/// single pixels.
#[test]
fn nnfm_value_and_grad_match_by_hand_and_fd() {
    let vgg = small_vgg(Backend::Fast);
    let painting = image(40, 1, 40, 44);
    let img = image(41, 1, 32, 32);
    let obj = nnfm_objective(&vgg, &painting, 2.0);
    let (p, g) = obj.loss_and_grad(&vgg, &img).unwrap();
    let by_hand = nnfm_by_hand(&vgg, &img, &painting, 2.0);
    assert!(p.nnfm > 0.01 && (p.nnfm as f64 - by_hand).abs() < 1e-4 * by_hand, "{} vs {by_hand} by hand", p.nnfm);
    assert_eq!((p.total, p.style, p.content), (p.nnfm, 0.0, 0.0));
    let gen = small_vgg(Backend::Generic);
    let (pg, gg) = obj.loss_and_grad(&gen, &img).unwrap();
    assert!((pg.nnfm - p.nnfm).abs() < 1e-4 * p.nnfm && max_rel(&g, &gg) < 2e-3, "generic: {} vs {}, grad {}", pg.nnfm, p.nnfm, max_rel(&g, &gg));
    let l = |d: &Tensor, s: f64| obj.loss(&vgg, &(&img + (d * s).unwrap()).unwrap()).unwrap().nnfm as f64;
    let gmax = g.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() as f64;
    let mut dirs = vec![((&g / gmax).unwrap(), 1e-2), ((image(42, 1, 32, 32) - 0.5).unwrap(), 5e-2)];
    // Single pixels, drawn among those with a large gradient (the slope stands above the f32
    // noise of the loss).
    let gv = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let strong: Vec<usize> = (0..gv.len()).filter(|&i| gv[i].abs() as f64 > 0.3 * gmax).collect();
    let mut rng = SplitMix(43);
    for _ in 0..4 {
        let mut e = vec![0.0f32; gv.len()];
        e[strong[(rng.uniform() * strong.len() as f32) as usize]] = 1.0;
        dirs.push((Tensor::from_vec(e, (1, 3, 32, 32), &Device::Cpu).unwrap(), 5e-2));
    }
    for (i, (dir, tol)) in dirs.iter().enumerate() {
        // Small enough that few ReLU or nearest-neighbour switches happen along the segment, large
        // enough for f32 (seen: 0.5 %, 1 %, and 0.3–3.4 % on the pixels).
        let eps = match i {
            0 => 1e-3,
            1 => 3e-4,
            _ => 3e-3,
        };
        let fd = (l(dir, eps) - l(dir, -eps)) / (2.0 * eps);
        let an = (&g * dir).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() as f64;
        assert!((fd - an).abs() < tol * an.abs().max(fd.abs()), "direction {i}: fd {fd} vs analytic {an}");
    }
}

/// The painting seen as itself: every view feature is a painting feature, at distance 0; with the
/// painting's positions subsampled it no longer is.
#[test]
fn nnfm_of_the_painting_itself_is_zero() {
    let vgg = small_vgg(Backend::Fast);
    let painting = image(44, 1, 36, 36);
    let p = nnfm_objective(&vgg, &painting, 1.0).loss(&vgg, &painting).unwrap();
    assert!(p.nnfm.abs() < 1e-5, "{}", p.nnfm);
    let ls = layers(&NNFM_LAYERS).unwrap();
    let few = Objective { nnfm: NnfmTargets::new(&vgg, &painting, 1.0, &ls, 10).unwrap().terms, ..Default::default() };
    assert!(few.loss(&vgg, &painting).unwrap().nnfm > 0.01);
    assert!(nnfm_objective(&vgg, &painting, 1.0).loss(&vgg, &image(45, 1, 36, 36)).unwrap().nnfm > 0.01);
}
