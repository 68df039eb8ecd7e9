//! Filling the texels nothing wrote: each takes the colour of the nearest
//! written texel. That fills holes inside UV islands and pads every island
//! outwards, so bilinear and mip-mapped sampling at UV seams never picks up
//! background. An image operation below both its users: the optimizer's
//! post-processing (texels no view ever saw, before any export) and the
//! unwrapper's bake (texels no triangle covers).

use std::collections::VecDeque;

use crate::image_io::Image;

/// Replaces every texel whose `seen` flag is false with the colour of the
/// nearest seen texel (breadth-first, 4-neighbour distance). Leaves the image
/// unchanged when nothing was seen.
pub fn fill_unseen(img: &mut Image, seen: &[bool]) {
    let (w, h) = (img.width as usize, img.height as usize);
    assert_eq!(seen.len(), w * h, "one seen flag per texel");
    let mut source: Vec<u32> = vec![u32::MAX; w * h];
    let mut queue = VecDeque::new();
    for (i, &s) in seen.iter().enumerate() {
        if s {
            source[i] = i as u32;
            queue.push_back(i);
        }
    }
    while let Some(i) = queue.pop_front() {
        let (x, y) = (i % w, i / w);
        let neighbours = [
            (x > 0).then(|| i - 1),
            (x + 1 < w).then(|| i + 1),
            (y > 0).then(|| i - w),
            (y + 1 < h).then(|| i + w),
        ];
        for n in neighbours.into_iter().flatten() {
            if source[n] == u32::MAX {
                source[n] = source[i];
                queue.push_back(n);
            }
        }
    }
    for (i, &s) in source.iter().enumerate() {
        if s != u32::MAX && s as usize != i {
            let (sx, sy) = (s as usize % w, s as usize / w);
            let rgb = img.pixel(sx as u32, sy as u32);
            img.set_pixel((i % w) as u32, (i / w) as u32, rgb);
        }
    }
}

/// [`fill_unseen`] for each material's texture, `seen` holding one plane of
/// flags per material (`[materials, height, width]`): a material's unseen
/// texels are filled only from its own seen ones.
pub fn fill_unseen_materials(textures: &mut [Image], seen: &[bool]) {
    let plane = seen.len() / textures.len().max(1);
    for (m, img) in textures.iter_mut().enumerate() {
        fill_unseen(img, &seen[m * plane..(m + 1) * plane]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unseen_texels_take_the_nearest_seen_colour() {
        let mut img = Image::filled(6, 1, [0.0; 3]);
        img.set_pixel(1, 0, [1.0, 0.0, 0.0]);
        img.set_pixel(4, 0, [0.0, 0.0, 1.0]);
        let seen = [false, true, false, false, true, false];
        fill_unseen(&mut img, &seen);
        let row: Vec<[f32; 3]> = (0..6).map(|x| img.pixel(x, 0)).collect();
        let (r, b) = ([1.0, 0.0, 0.0], [0.0, 0.0, 1.0]);
        assert_eq!(row, [r, r, r, b, b, b]);
    }

    #[test]
    fn nothing_seen_leaves_the_image_alone() {
        let mut img = Image::filled(2, 2, [0.3; 3]);
        fill_unseen(&mut img, &[false; 4]);
        assert_eq!(img, Image::filled(2, 2, [0.3; 3]));
    }

    #[test]
    fn each_material_is_filled_from_its_own_seen_texels() {
        // Material 0 saw its left texel (red), material 1 its right one
        // (blue); a fill that crossed planes would give material 1 red.
        let (r, b, g) = ([1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]);
        let mut texs = [Image::filled(3, 1, g), Image::filled(3, 1, g), Image::filled(3, 1, g)];
        texs[0].set_pixel(0, 0, r);
        texs[1].set_pixel(2, 0, b);
        let seen = [true, false, false, false, false, true, false, false, false];
        fill_unseen_materials(&mut texs, &seen);
        let row = |i: usize| (0..3).map(|x| texs[i].pixel(x, 0)).collect::<Vec<_>>();
        assert_eq!(row(0), [r, r, r]);
        assert_eq!(row(1), [b, b, b]);
        assert_eq!(row(2), [g, g, g], "nothing seen: left alone");
    }
}
