// The hub's web page in a real browser (Debian's chromium, driven by
// playwright-core): sign in with a `ferry web` link, see a CLI upload
// appear live, upload through the file picker, download and compare the
// bytes, sign out, and find the link spent. Run by web_page.rs, which
// passes what it needs in the environment; exits non-zero on a failure.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const env = process.env;
const need = (name) => {
  if (!env[name]) throw new Error(`${name} is not set`);
  return env[name];
};
const link = need('FERRY_LINK');
const work = need('FERRY_WORK');
const ferry = (...args) => execFileSync(need('FERRY_BIN'), ['--hub', need('FERRY_HUB'), ...JSON.parse(need('FERRY_FLAGS')), ...args], {
  cwd: work,
  env: { ...env, FERRY_HOME: need('FERRY_CLIENT_HOME'), RUST_LOG: 'warn' },
});
const check = (ok, what) => { if (!ok) throw new Error(what); };

const browser = await chromium.launch({
  executablePath: env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, viewport: { width: 1000, height: 760 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(link);
  await page.getByText(/Signed in as alice/).waitFor({ timeout: 15000 });
  check(!page.url().includes('signin'), 'the code is taken out of the address bar');
  const tls = link.startsWith('https:');
  const cookie = (await context.cookies()).find((c) => c.name === (tls ? '__Host-ferry_session' : 'ferry_session'));
  check(cookie && cookie.httpOnly && cookie.sameSite === 'Strict' && cookie.secure === tls,
    `the session cookie is HttpOnly, SameSite=Strict, Secure under TLS (and __Host- there): ${JSON.stringify(cookie)}`);

  // A CLI upload shows up live, in the events and in the listing.
  writeFileSync(join(work, 'live.txt'), 'uploaded from the CLI\n');
  ferry('put', 'live.txt');
  await page.locator('#events').getByText('alice: Uploaded live.txt').waitFor({ timeout: 15000 });
  await page.locator('tr[data-name="live.txt"]').waitFor({ timeout: 15000 });

  // An upload through the file picker, resumable, with its progress bar.
  const upload = join(work, 'picked.bin');
  const bytes = Buffer.alloc(3 * 1024 * 1024 + 17);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + 7) % 251;
  writeFileSync(upload, bytes);
  await page.setInputFiles('#files', upload);
  await page.locator('#uploads li', { hasText: 'picked.bin' }).getByText('stored').waitFor({ timeout: 30000 });
  const progress = await page.locator('#uploads progress').first().evaluate((p) => [p.value, p.max]);
  check(progress[0] === progress[1], `the progress bar is full: ${progress}`);
  await page.locator('tr[data-name="picked.bin"]').waitFor({ timeout: 15000 });

  // Download it and compare the bytes.
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.locator('tr[data-name="picked.bin"] a').click(),
  ]);
  const got = readFileSync(await download.path());
  check(Buffer.compare(got, bytes) === 0, `the download is the upload (${got.length} of ${bytes.length} bytes)`);

  // Search finds it; the screenshot is of the whole page.
  await page.fill('#term', 'picked');
  await page.click('#find button[type=submit]');
  await page.getByText('Found for “picked”').waitFor();
  await page.click('#clear');
  await page.locator('tr[data-name="live.txt"]').waitFor();
  if (env.FERRY_SCREENSHOT) await page.screenshot({ path: env.FERRY_SCREENSHOT, fullPage: true });

  // Another site's page cannot change anything with the cookie.
  const forged = await page.evaluate(async () => (await fetch('/api/v1/files/live.txt', { method: 'DELETE' })).status);
  check(forged === 403, `a request without the page's header is refused: ${forged}`);

  // Sign out; the link was used once and is spent.
  await page.click('#signout');
  await page.getByText('Not signed in.').waitFor();
  const again = await context.newPage();
  await again.goto(link);
  await again.getByText(/used already or expired/).waitFor({ timeout: 15000 });
  check(errors.length === 0, `no script errors: ${errors}`);
  console.log('browser test passed');
} finally {
  await browser.close();
}
