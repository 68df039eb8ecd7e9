// Opens a real texstyle run page (OUT/index.html) from file:// in headless Chromium with no
// network, through the Chrome DevTools protocol (playwright-core), and checks what a user sees:
// the model drawn with the styled texture's colours, the switch to the original texture, no
// console error. Also validates the page's GLB (with KHR_materials_variants) and the run's
// own --export glb with the Khronos glTF-Validator. Run by .ci/browser.sh, which makes the run:
//   TEXSTYLE_RUN=OUT TEXSTYLE_STYLED_PNG=OUT/spot_spot.png TEXSTYLE_ORIGINAL_PNG=meshes/spot/spot_texture.png \
//   TEXSTYLE_SHOTS=DIR node --test
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync, mkdirSync } from 'node:fs';
import { inflateSync } from 'node:zlib';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { chromium } from 'playwright-core';
import validator from 'gltf-validator';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (see .ci/browser.sh)`);
  return v;
};
const RUN = env('TEXSTYLE_RUN');
const SHOTS = process.env.TEXSTYLE_SHOTS || mkdtempSync(join(tmpdir(), 'texstyle-shots-'));
mkdirSync(SHOTS, { recursive: true });

// A PNG's pixels (8-bit RGB or RGBA, not interlaced: what texstyle and Chromium write).
function decodePng(buf) {
  assert.equal(buf.toString('latin1', 1, 4), 'PNG');
  let pos = 8, width, height, channels;
  const idat = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos), type = buf.toString('latin1', pos + 4, pos + 8);
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0); height = data.readUInt32BE(4);
      assert.equal(data[8], 8, 'bit depth 8'); assert.equal(data[12], 0, 'not interlaced');
      channels = { 2: 3, 6: 4 }[data[9]];
      assert.ok(channels, `colour type ${data[9]}`);
    } else if (type === 'IDAT') idat.push(data);
    pos += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat)), stride = width * channels;
  const px = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)], line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? px[y * stride + x - channels] : 0, b = y > 0 ? px[(y - 1) * stride + x] : 0;
      const c = x >= channels && y > 0 ? px[(y - 1) * stride + x - channels] : 0;
      const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
      const pred = [0, a, b, (a + b) >> 1, pa <= pb && pa <= pc ? a : pb <= pc ? b : c][f];
      px[y * stride + x] = (line[x] + pred) & 255;
    }
  }
  return { width, height, channels, px };
}

// Mean colour (0–1) of an image's pixels that `keep` accepts, and their count.
function meanColor({ width, height, channels, px }, keep = () => true) {
  const sum = [0, 0, 0]; let n = 0;
  for (let i = 0; i < width * height; i++) {
    const c = [px[i * channels], px[i * channels + 1], px[i * channels + 2]];
    if (!keep(c)) continue;
    c.forEach((v, k) => (sum[k] += v / 255)); n++;
  }
  return { mean: sum.map((s) => s / Math.max(n, 1)), n, total: width * height };
}
const dist = (a, b) => Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);

// The object's pixels in a screenshot of the viewer: those away from the background (a pixel
// near the corner, inside the border).
function objectColor(png) {
  const img = decodePng(png), at = (8 * img.width + 8) * img.channels;
  const bg = [img.px[at], img.px[at + 1], img.px[at + 2]];
  return meanColor(img, (c) => Math.max(...c.map((v, k) => Math.abs(v - bg[k]))) > 24);
}

let browser, context, page;
const errors = [], requests = [];

before(async () => {
  const userDataDir = mkdtempSync(join(tmpdir(), 'texstyle-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    offline: true,
    viewport: { width: 1200, height: 900 },
    args: ['--headless=new', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--no-sandbox',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  page = context.pages()[0] || (await context.newPage());
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('request', (r) => { if (!/^(file|data|blob):/.test(r.url())) requests.push(r.url()); });
  await page.goto(pathToFileURL(join(RUN, 'index.html')).href);
});

after(async () => { await context?.close(); });

// Resolves after the viewer has drawn a few frames with its current state.
const settle = () => page.evaluate(() => new Promise((res) => {
  let k = 0; const tick = () => (++k < 10 ? requestAnimationFrame(tick) : setTimeout(res, 300)); tick();
}));

async function shot(name) {
  await settle();
  const png = await page.locator('model-viewer').screenshot();
  writeFileSync(join(SHOTS, name), png);
  return png;
}

test('the page loads the model from file:// and shows the styled texture, then the original', async () => {
  const loaded = await page.evaluate(() => new Promise((res, rej) => {
    const mv = document.querySelector('model-viewer');
    if (mv.loaded) return res(true);
    mv.addEventListener('load', () => res(true));
    mv.addEventListener('error', (e) => rej(new Error('model-viewer error: ' + JSON.stringify(e.detail))));
    setTimeout(() => rej(new Error('no load event in 90 s')), 90000);
  }));
  assert.ok(loaded);
  const variants = await page.evaluate(() => document.querySelector('model-viewer').availableVariants);
  assert.deepEqual(variants, ['styled', 'original']);
  const styledTex = meanColor(decodePng(readFileSync(env('TEXSTYLE_STYLED_PNG')))).mean;
  const originalTex = meanColor(decodePng(readFileSync(env('TEXSTYLE_ORIGINAL_PNG')))).mean;
  assert.ok(dist(styledTex, originalTex) > 0.2, `the two textures must differ for this test to mean anything: ${styledTex} vs ${originalTex}`);

  const styled = objectColor(await shot('styled.png'));
  console.log('styled: texture mean', styledTex, 'drawn mean', styled.mean, `${styled.n} of ${styled.total} pixels`);
  assert.ok(styled.n > 0.05 * styled.total, `the object covers ${styled.n} of ${styled.total} pixels`);
  assert.ok(dist(styled.mean, styledTex) < 0.12, `drawn ${styled.mean}, styled texture ${styledTex}`);
  assert.ok(dist(styled.mean, styledTex) < dist(styled.mean, originalTex));

  await page.click('#show-original');
  await page.waitForFunction(() => document.querySelector('model-viewer').variantName === 'original');
  const original = objectColor(await shot('original.png'));
  console.log('original: texture mean', originalTex, 'drawn mean', original.mean, `${original.n} pixels`);
  assert.ok(original.n > 0.05 * original.total);
  assert.ok(dist(original.mean, originalTex) < 0.12, `drawn ${original.mean}, original texture ${originalTex}`);
  assert.ok(dist(original.mean, originalTex) < dist(original.mean, styledTex));

  await page.click('#show-styled');
  await page.waitForFunction(() => document.querySelector('model-viewer').variantName === 'styled');
  const back = objectColor(await shot('styled_again.png'));
  assert.ok(dist(back.mean, styled.mean) < 0.02, `back to styled: ${back.mean} vs ${styled.mean}`);
  await page.screenshot({ path: join(SHOTS, 'page.png'), fullPage: false });
});

test('the page shows no console error and asks for nothing off the machine', () => {
  assert.deepEqual(errors, []);
  assert.deepEqual(requests, []);
});

async function validate(bytes, name) {
  const report = await validator.validateBytes(new Uint8Array(bytes), { uri: name, maxIssues: 100 });
  const shown = report.issues.messages.filter((m) => m.severity === 0);
  assert.equal(report.issues.numErrors, 0, `${name}: ${JSON.stringify(shown, null, 1)}`);
  return report;
}

test('the page GLB, with KHR_materials_variants, passes the Khronos glTF-Validator', async () => {
  const html = readFileSync(join(RUN, 'index.html'), 'latin1');
  const m = html.match(/src="data:model\/gltf-binary;base64,([A-Za-z0-9+/=]+)"/);
  assert.ok(m, 'no embedded GLB');
  const report = await validate(Buffer.from(m[1], 'base64'), 'page.glb');
  assert.ok(report.info.extensionsUsed.includes('KHR_materials_variants'), JSON.stringify(report.info.extensionsUsed));
});

test('the --export glb file passes the Khronos glTF-Validator', async () => {
  const glb = process.env.TEXSTYLE_GLB;
  assert.ok(glb, 'TEXSTYLE_GLB is not set');
  await validate(readFileSync(glb), 'export.glb');
});
