// Drives Debian's Chromium through `refine serve`'s dashboard, as a user
// would: the overview shows the running build, the target page follows its
// live log as it grows, a rebuild is refused without the token and queued
// with it. tests/serve.rs starts the server and the build, then runs this:
//
//   REFINE_URL=http://127.0.0.1:PORT REFINE_TOKEN=… REFINE_TARGET=//wheels:slow \
//   REFINE_SHOTS=DIR node tests/browser/dashboard.mjs
//
// Exits non-zero (with the reason) when the dashboard does not do it.
import { check, launch } from './lib.mjs';

const url = process.env.REFINE_URL;
const token = process.env.REFINE_TOKEN;
const target = process.env.REFINE_TARGET;
const shots = process.env.REFINE_SHOTS;
const [, kind, name] = target.match(/^\/\/([a-z]+):(.+)$/);

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(60000);

  // The overview: the run is there, and its build is running.
  await page.goto(url + '/');
  await page.waitForSelector('tr.run');
  const runs = await page.locator('tr.run').allTextContents();
  check(runs.some((r) => r.includes('build ' + target)), 'the overview lists the run of ' + target);
  const building = page.locator('a', { hasText: target }).first();
  await building.waitFor();
  await page.screenshot({ path: shots + '/overview.png', fullPage: true });

  // The target's page: its live log grows while we watch.
  await building.click();
  await page.waitForURL('**/targets/' + kind + '/' + name);
  await page.waitForSelector('#live-log');
  await page.waitForFunction(() => Number(document.getElementById('live-lines').textContent) >= 3);
  const first = Number(await page.textContent('#live-lines'));
  await page.waitForFunction((n) => Number(document.getElementById('live-lines').textContent) > n + 2, first);
  const later = Number(await page.textContent('#live-lines'));
  check(later > first, `the live log grew from ${first} to ${later} lines`);
  const text = await page.textContent('#live-log');
  check(/slow line \d+/.test(text), 'the live log shows what the build prints');
  await page.screenshot({ path: shots + '/target-live-log.png', fullPage: true });
  await page.waitForFunction(() => document.getElementById('live-state').textContent.startsWith('finished'), null, { timeout: 120000 });
  check((await page.textContent('#live-state')).includes('built'), 'the page says when the build has finished');

  // A rebuild without the token: refused.
  await page.click('button[data-action="/api/builds"]');
  await page.waitForFunction(() => document.getElementById('action-status').textContent.startsWith('refused'));
  check((await page.textContent('#action-status')).includes('401'), 'a rebuild without the token is refused (401)');

  // Log in once (the token goes in a form, never in a URL), then rebuild.
  await page.fill('input[name="token"]', token);
  await Promise.all([page.waitForURL(url + '/'), page.click('header button[type="submit"]')]);
  check((await page.textContent('header')).includes('token given'), 'logged in with the token');
  const cookies = await page.context().cookies();
  const c = cookies.find((x) => x.name === 'refine_token');
  check(c && c.httpOnly && c.sameSite === 'Strict', 'the token is kept as an HttpOnly, SameSite=Strict cookie');
  await page.goto(url + '/targets/' + kind + '/' + name);
  await page.click('button[data-action="/api/builds"]');
  await page.waitForFunction(() => document.getElementById('action-status').textContent.startsWith('queued'));
  check(true, 'with the token, the rebuild is queued: ' + (await page.textContent('#action-status')));
  // The queue shows it on the overview, and it ends.
  await page.goto(url + '/');
  await page.waitForSelector('tr.job');
  for (let i = 0; i < 120; i++) {
    const jobs = await page.locator('tr.job').allTextContents();
    if (jobs.some((j) => j.includes(target) && /done|failed/.test(j))) break;
    await page.waitForTimeout(1000);
    await page.reload();
  }
  const jobs = await page.locator('tr.job').allTextContents();
  check(jobs.some((j) => j.includes(target) && j.includes('done')), 'the queued rebuild ran: ' + jobs.join(' | '));
  await page.screenshot({ path: shots + '/overview-after.png', fullPage: true });

  // A finished log: searchable.
  await page.goto(url + '/targets/' + kind + '/' + name);
  await page.click('a:text("log")');
  await page.fill('input[name="q"]', 'slow line 7');
  await Promise.all([page.waitForNavigation(), page.click('main button[type="submit"]')]);
  check((await page.textContent('main')).includes('lines with'), 'the log can be searched');
  await page.screenshot({ path: shots + '/log-search.png', fullPage: true });

  // Where the time went: the target's build times over its runs, and the
  // run that built the slow wheel's dependencies as a timeline, slots and
  // critical path.
  await page.goto(url + '/targets/' + kind + '/' + name);
  const times = await page.locator('svg#build-times g.bar').count();
  check(times >= 1, `the target's page charts its build times (${times} bars)`);
  await page.goto(url + '/');
  const deps = page.locator('tr.run', { hasText: 'build //wheels:six' }).first().locator('a').first();
  await Promise.all([page.waitForURL('**/runs/*'), deps.click()]);
  const bars = await page.locator('svg#timeline g.bar').count();
  check(bars >= 3, `the run page draws the run as a timeline (${bars} bars)`);
  const crit = await page.locator('svg#timeline g.bar.crit').count();
  check(crit >= 1 && crit <= bars, `the critical path is outlined (${crit} of ${bars})`);
  const tip = await page.locator('svg#timeline g.bar.crit title').first().textContent();
  check(/^\/\/[a-z]+:.+ · built · .+( · key [0-9a-f]{12})? · on the critical path$/.test(tip), 'hovering a bar says its label, verdict, time and key: ' + tip);
  const slots = await page.locator('svg#timeline text', { hasText: /^slot \d+$/ }).count();
  check(slots >= 1, `the timeline has a lane per slot (${slots})`);
  await page.screenshot({ path: shots + '/run-timeline.png', fullPage: true });
} finally {
  await browser.close();
}
