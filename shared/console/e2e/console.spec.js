// Browser tests of Baton's web console against a real `baton serve` with real agents
// (scripts/test-console.sh starts them): sign in, run a task from its form (with a validation
// error shown at the field), watch nodes finish live, read a node's output, stop a job, a
// restricted user who cannot see or use what RBAC denies, sign out. Every request the page
// makes must go to the server's own origin, and the page must log no CSP violation.
const { test, expect } = require('@playwright/test');
const { AxeBuilder } = require('@axe-core/playwright');
const fs = require('node:fs');
const path = require('node:path');

const ORIGIN = process.env.BATON_URL;
const adminToken = () => fs.readFileSync(process.env.BATON_ADMIN_TOKEN_FILE, 'utf8').trim();
const aliceToken = () => fs.readFileSync(process.env.BATON_ALICE_TOKEN_FILE, 'utf8').trim();
// Screenshots go to each test's output directory (test-results/, not tracked); with
// BATON_UPDATE_SCREENSHOTS=1, scripts/test-console.sh sets BATON_SCREENSHOTS to docs/console.
const SHOTS = process.env.BATON_SCREENSHOTS || '';

test.describe.configure({ mode: 'serial' });

let requests;
let problems;

test.beforeEach(async ({ page }) => {
  expect(ORIGIN, 'BATON_URL is set').toBeTruthy();
  requests = [];
  problems = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // A refused request (401 before signing in, a 403 the test provokes) is logged by the
    // browser as "Failed to load resource"; anything else logged as an error is a fault, CSP
    // violations ("Refused to ...") included.
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
});

test.afterEach(async () => {
  for (const u of requests) {
    if (u.startsWith('data:')) continue;
    expect(new URL(u).origin, `request to ${u}`).toBe(ORIGIN);
  }
  for (const t of [adminToken(), aliceToken()]) {
    expect(requests.filter((u) => u.includes(t)), 'a token in a URL').toEqual([]);
  }
  expect(problems).toEqual([]);
});

async function shot(page, name) {
  if (SHOTS) fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: SHOTS ? path.join(SHOTS, `${name}.png`) : test.info().outputPath(`${name}.png`) });
}

async function signIn(page, token) {
  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'Sign in to Baton' })).toBeVisible();
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('heading', { name: 'Jobs', exact: true })).toBeVisible();
}

// fillTarget targets nodes by name.
async function targetNodes(page, nodes) {
  await page.locator('#target-nodes').check();
  await page.locator('#scope-nodes').fill(nodes);
}

async function chooseTask(page, name) {
  await page.goto('/#/run/task');
  await page.getByLabel('Task', { exact: true }).selectOption(name);
  await expect(page.getByRole('heading', { name: `Run task ${name}` })).toBeVisible();
}

function jobIdFrom(page) {
  const m = page.url().match(/#\/jobs\/(\d+)$/);
  expect(m, `job page URL ${page.url()}`).toBeTruthy();
  return m[1];
}

test('sign in with a token: a session cookie, keyboard navigation, no token kept', async ({ page, context }) => {
  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'Sign in to Baton' })).toBeVisible();
  await shot(page, 'sign-in');

  await page.getByLabel('API token').fill('not-a-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toContainText('not valid');
  await expect(page.getByLabel('API token')).toHaveAttribute('aria-invalid', 'true');

  await page.getByLabel('API token').fill(adminToken());
  await page.getByLabel('API token').press('Enter');
  await expect(page.getByRole('heading', { name: 'Jobs', exact: true })).toBeVisible();
  await expect(page.locator('#who-login')).toHaveText('admin');

  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'baton_session');
  expect(session, 'session cookie').toBeTruthy();
  expect(session.httpOnly).toBe(true);
  expect(session.secure).toBe(true);
  expect(session.sameSite).toBe('Strict');
  expect(session.value).not.toBe(adminToken());
  expect(await page.evaluate(() => document.cookie)).not.toContain('baton_session');
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
  expect(stored).not.toContain(adminToken());
  expect(stored).not.toContain(session.value);

  // The CSRF header is required: the same request without it is refused.
  const noHeader = await page.evaluate(async () => (await fetch('/baton/v1/whoami', { credentials: 'same-origin' })).status);
  expect(noHeader).toBe(403);

  // Keyboard: after a load the first Tab reaches the skip link, with a visible focus ring; then
  // the navigation.
  await page.reload();
  await expect(page.getByRole('heading', { name: 'Jobs', exact: true })).toBeVisible();
  await page.keyboard.press('Tab');
  await expect(page.locator('a.skip')).toBeFocused();
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  expect(outline).not.toBe('none');
  await page.keyboard.press('Tab');
  await expect(page.getByRole('link', { name: 'Jobs' })).toBeFocused();
  await page.keyboard.press('Tab');
  await expect(page.getByRole('link', { name: 'Run a task' })).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(page.getByRole('heading', { name: 'Run a task' })).toBeVisible();
  await expect(page.getByRole('heading', { name: 'Run a task' })).toBeFocused();
});

test('run a task from its form: a validation error at the field, then nodes finish live', async ({ page }) => {
  await signIn(page, adminToken());
  await chooseTask(page, 'demo::sleep');
  const seconds = page.getByLabel('seconds');
  await expect(seconds).toBeVisible();

  await seconds.fill('99999');
  await targetNodes(page, 'web1, web2, web3, db1');
  await page.getByLabel('Concurrency').fill('2');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  const err = page.locator('#param-seconds-error');
  await expect(err).toBeVisible();
  await expect(err).toContainText(/seconds|Integer|99999/);
  await expect(seconds).toHaveAttribute('aria-invalid', 'true');
  await expect(seconds).toHaveAttribute('aria-describedby', /param-seconds-error/);
  await expect(seconds).toBeFocused();
  await expect(page.getByRole('alert')).toBeVisible();
  await shot(page, 'run-task');

  await seconds.fill('2');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await expect(page).toHaveURL(/#\/jobs\/\d+$/);
  const id = jobIdFrom(page);
  await expect(page.getByRole('heading', { name: `Job ${id}: demo::sleep` })).toBeVisible();
  const rows = page.locator('#nodes-table tbody tr');
  await expect(rows).toHaveCount(4);
  // Watched live: a node is seen running, later all four finished, without reloading the page.
  await expect(page.locator('#nodes-table .node-state', { hasText: 'running' }).first()).toBeVisible();
  await expect(page.locator('#nodes-table .node-state', { hasText: 'finished' })).toHaveCount(4, { timeout: 45_000 });
  await expect(page.locator('#job-summary')).toContainText('finished');
  await expect(page.locator('#job-counts')).toContainText('finished: 4');
  await expect(page.locator('#events-table')).toContainText('node_finished');
  await shot(page, 'job');

  // Incremental: eight node changes, yet the node table's page was read only when the page
  // opened and once when the job ended (for the results), a page of 50 each time; the changes
  // came from the events after the first.
  await expect(page.locator('#nodes-table tbody tr').first()).toContainText('"slept":2');
  const nodeLists = requests.filter((u) => new RegExp(`/jobs/${id}/nodes(\\?|$)`).test(u));
  expect(nodeLists.length, nodeLists.join('\n')).toBeLessThanOrEqual(2);
  for (const u of nodeLists) expect(new URL(u).searchParams.get('limit'), u).toBe('50');
  const later = requests.filter((u) => new RegExp(`/jobs/${id}/events\\?start=([2-9]|\\d\\d+)`).test(u));
  expect(later.length).toBeGreaterThan(0);

  // A node's result.
  await page.getByRole('button', { name: 'Show node web1' }).click();
  await expect(page.locator('#node-result-json')).toContainText('"slept": 2');
});

// demo::ticker's default run, 35 lines a second apart: longer than the server's 25 s cut of one
// server-sent-events response, after which the page goes on by polling from the last chunk.
// Line 30 is on the page while the node still runs, and at the end every line is there once.
test('a node\'s output, streamed while a 35 s task runs', async ({ page, request }) => {
  test.setTimeout(120_000);
  await signIn(page, adminToken());
  await chooseTask(page, 'demo::ticker');
  await page.getByLabel('lines').fill('35');
  await page.getByLabel('interval_ms').fill('1000');
  await targetNodes(page, 'web2');
  await page.getByLabel('Stream the output live').check();
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await expect(page).toHaveURL(/#\/jobs\/\d+$/);
  const id = jobIdFrom(page);
  await page.getByRole('button', { name: 'Show node web2' }).click();
  const out = page.locator('#node-output');
  await expect(out).toContainText('tick 2 of 35');
  await expect(out).toContainText('tick 30 of 35', { timeout: 60_000 });
  // Seen while it runs: the page shows the node running, and the API agrees.
  await expect(page.locator('#node-result dd .state')).toHaveText('running');
  const nodes = await request.get(`/orchestrator/v1/jobs/${id}/nodes`, { headers: { 'X-Authentication': adminToken() } });
  expect(nodes.status()).toBe(200);
  expect((await nodes.json()).items.find((n) => n.name === 'web2').state).toBe('running');

  await expect(out).toContainText('tick 35 of 35', { timeout: 30_000 });
  await expect(page.locator('#output-note')).toHaveText('Output complete.', { timeout: 30_000 });
  await expect(out.locator('.stderr').first()).toContainText('tick 5: a fifth line, on stderr');
  // Every line exactly once and in order, none lost or doubled across the end of the first
  // stream and the polling after it: 35 ticks, 7 stderr lines, the JSON summary.
  const lines = (await out.textContent()).split('\n').filter(Boolean);
  expect(lines.filter((l) => /^tick \d+ of 35$/.test(l))).toEqual(Array.from({ length: 35 }, (_, i) => `tick ${i + 1} of 35`));
  expect(lines.filter((l) => /on stderr$/.test(l))).toEqual(Array.from({ length: 7 }, (_, i) => `tick ${5 * (i + 1)}: a fifth line, on stderr`));
  expect(lines.filter((l) => l === '{"ticks":35,"interval_ms":1000}')).toHaveLength(1);
  expect(lines).toHaveLength(35 + 7 + 1);
  // The 25 s cut was crossed: the output was read again after the first stream, from a chunk
  // already shown (after=N, N > 0), not from the start.
  const outputReads = requests.filter((u) => new RegExp(`/jobs/${id}/nodes/web2/output\\?`).test(u));
  expect(outputReads.length, outputReads.join('\n')).toBeGreaterThanOrEqual(2);
  expect(outputReads.slice(1).every((u) => /after=[1-9]\d*/.test(u)), outputReads.join('\n')).toBe(true);

  await expect(page.locator('#node-result-json')).toBeVisible();
  await page.locator('#node-detail-title').scrollIntoViewIfNeeded();
  await page.evaluate(() => window.scrollBy(0, document.querySelector('#node-detail-title').getBoundingClientRect().top - 10));
  await shot(page, 'output');
});

// Output larger than one message (demo::bigoutput: 16 KiB in 64-byte lines): all of it, once.
test('a node\'s large output, whole and in order', async ({ page }) => {
  await signIn(page, adminToken());
  await chooseTask(page, 'demo::bigoutput');
  await page.getByLabel('kib').fill('16');
  await targetNodes(page, 'web3');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await expect(page).toHaveURL(/#\/jobs\/\d+$/);
  await page.getByRole('button', { name: 'Show node web3' }).click();
  const out = page.locator('#node-output');
  await expect(page.locator('#output-note')).toHaveText('Output complete.', { timeout: 45_000 });
  const lines = (await out.textContent()).split('\n').filter(Boolean);
  expect(lines.length).toBe(16 * 16 + 1);
  expect(lines.filter((l) => l === '0'.repeat(63))).toHaveLength(16 * 16);
  expect(lines[lines.length - 1]).toBe('END-OF-OUTPUT');
});

test('stop a job', async ({ page }) => {
  await signIn(page, adminToken());
  await chooseTask(page, 'demo::sleep');
  await page.getByLabel('seconds').fill('120');
  await targetNodes(page, 'web1,web2,web3');
  await page.getByLabel('Concurrency').fill('1');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await expect(page).toHaveURL(/#\/jobs\/\d+$/);
  await expect(page.locator('#nodes-table .node-state', { hasText: 'running' })).toHaveCount(1);
  await page.getByLabel('Force (kill running tasks)').check();
  await page.getByRole('button', { name: 'Stop job' }).click();
  await expect(page.locator('#job-summary')).toContainText('stopped', { timeout: 45_000 });
  await expect(page.getByRole('button', { name: 'Stop job' })).toHaveCount(0);
  await expect(page.locator('#nodes-table .node-state', { hasText: /^(running|new|ready)$/ })).toHaveCount(0);
  await expect(page.locator('#nodes-table .node-state', { hasText: 'skipped' })).toHaveCount(2);
  await expect(page.locator('#events-table')).toContainText('node_stopped');
});

test('jobs list, Puppet form, inventory and node groups', async ({ page }) => {
  await signIn(page, adminToken());
  await expect(page.locator('#jobs-table tbody tr').first()).toBeVisible();
  await page.getByLabel('State').selectOption('stopped');
  await page.getByRole('button', { name: 'Filter' }).click();
  await expect(page).toHaveURL(/state=stopped/);
  await expect(page.locator('#jobs-table tbody tr')).toHaveCount(1);
  await page.getByLabel('State').selectOption('');
  await page.getByLabel('Owner').fill('nobody');
  await page.getByRole('button', { name: 'Filter' }).click();
  await expect(page.getByText('No jobs match.')).toBeVisible();
  await page.goto('/#/jobs');
  await expect(page.locator('#jobs-table tbody tr').first()).toBeVisible();
  await shot(page, 'jobs');

  await page.getByRole('link', { name: 'Run Puppet' }).click();
  await expect(page.getByRole('heading', { name: 'Run Puppet' })).toBeVisible();
  await expect(page.getByLabel('No-op', { exact: true })).toBeVisible();
  await expect(page.getByLabel('Tags', { exact: true })).toBeVisible();
  await shot(page, 'run-puppet');
  // The form's request is one the API accepts: a no-op Puppet run on web1 becomes a job that ends
  // (finished where the agent has Puppet, failed where it has not).
  await targetNodes(page, 'web1');
  await page.getByLabel('No-op', { exact: true }).check();
  await page.getByLabel('Tags', { exact: true }).fill('ntp,ssh');
  await page.getByLabel('Timeout (s)').fill('60');
  await page.getByRole('button', { name: 'Run Puppet' }).click();
  await expect(page).toHaveURL(/#\/jobs\/\d+$/);
  await expect(page.getByRole('heading', { name: /^Job \d+: Puppet run$/ })).toBeVisible();
  await expect(page.locator('#job-summary .state')).toHaveText(/^(finished|failed)$/, { timeout: 60_000 });

  await page.getByRole('link', { name: 'Inventory' }).click();
  await expect(page.locator('#inventory-table tbody tr')).toHaveCount(4);
  await expect(page.locator('#inventory-table')).not.toContainText('disconnected');
  await page.getByLabel('Search nodes').fill('web');
  await expect(page.locator('#inventory-table tbody tr')).toHaveCount(3);
  await shot(page, 'inventory');
  await page.getByRole('link', { name: 'web1' }).click();
  await expect(page.getByRole('heading', { name: 'Node web1' })).toBeVisible();
  await expect(page.locator('#facts-table tbody tr').first()).toBeVisible({ timeout: 60_000 }).catch(async () => {
    await page.reload(); // facts arrive in the background after the agent connects
    await expect(page.locator('#facts-table tbody tr').first()).toBeVisible({ timeout: 60_000 });
  });
  await page.getByLabel('Search facts (name or value)').fill('kernel');
  await expect(page.locator('#facts-table tbody tr').first()).toContainText('kernel');

  await page.getByRole('link', { name: 'Node groups' }).click();
  await expect(page.locator('#groups-table')).toContainText('webs');
  await page.getByLabel('Name', { exact: true }).fill('dbs');
  await page.getByLabel('Nodes', { exact: true }).fill('db1');
  await page.getByRole('button', { name: 'Create group' }).click();
  await expect(page.locator('#groups-table')).toContainText('dbs');
  await shot(page, 'groups');
});

test('a restricted user cannot see or use what RBAC denies', async ({ page, request }) => {
  // A job of admin's that is still running when alice looks at it.
  const admin = { 'X-Authentication': adminToken() };
  const started = await request.post('/orchestrator/v1/command/task', { headers: admin,
    data: { task: 'demo::sleep', params: { seconds: 120 }, scope: { nodes: ['db1'] }, description: 'admin\'s long job' } });
  expect(started.status()).toBe(202);
  const running = (await started.json()).job.name;
  await signIn(page, aliceToken());
  await expect(page.locator('#who-login')).toHaveText('alice');
  await expect(page.getByRole('link', { name: 'Run Puppet' })).toBeHidden();
  await expect(page.getByRole('link', { name: 'Run a task' })).toBeVisible();

  await page.goto('/#/run/task');
  // Auto-retrying: the options appear once the task list has loaded.
  await expect(page.locator('#task-select option')).toHaveText(['— choose a task —', 'demo::hello']);
  await page.goto('/#/run/task/demo%3A%3Asleep');
  await expect(page.getByRole('alert')).toContainText('You may not run task demo::sleep');
  await expect(page.getByRole('button', { name: 'Run', exact: true })).toHaveCount(0);

  // Allowed on group webs only: the API refuses db1, and the form says so.
  await chooseTask(page, 'demo::hello');
  await targetNodes(page, 'db1');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await expect(page.getByRole('alert')).toContainText(/permit/i);
  await targetNodes(page, 'web1');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await expect(page).toHaveURL(/#\/jobs\/\d+$/);
  await expect(page.locator('#nodes-table .node-state', { hasText: 'finished' })).toHaveCount(1);

  // No Stop button on a running job; no Puppet form; no group management.
  await page.goto('/#/jobs');
  await page.getByRole('link', { name: `Job ${running}`, exact: true }).click();
  await expect(page.getByRole('heading', { name: `Job ${running}: demo::sleep` })).toBeVisible();
  await expect(page.locator('#nodes-table .node-state', { hasText: 'running' })).toHaveCount(1);
  await expect(page.getByRole('button', { name: 'Stop job' })).toHaveCount(0);
  await page.goto('/#/run/puppet');
  await expect(page.getByText('You may not run Puppet')).toBeVisible();
  await expect(page.locator('#puppet-form')).toHaveCount(0);
  await page.goto('/#/groups');
  await expect(page.locator('#groups-table')).toContainText('webs');
  await expect(page.getByRole('button', { name: 'Create group' })).toHaveCount(0);
  await expect(page.getByRole('button', { name: /^Delete group/ })).toHaveCount(0);

  // The API enforces it too: what the page hides, a hand-made request cannot do.
  const statuses = await page.evaluate(async (RUNNING) => {
    const post = async (p, body) => (await fetch(p, { method: 'POST', body: JSON.stringify(body),
      headers: { 'Content-Type': 'application/json', 'X-Baton-CSRF': session.csrf } })).status;
    return {
      stop: await post('/orchestrator/v1/command/stop', { job: RUNNING }),
      sleep: await post('/orchestrator/v1/command/task', { task: 'demo::sleep', params: { seconds: 1 }, scope: { nodes: ['web1'] } }),
      deploy: await post('/orchestrator/v1/command/deploy', { environment: 'production', scope: { nodes: ['web1'] } }),
      group: await post('/baton/v1/groups', { name: 'mine', nodes: ['web1'] }),
    };
  }, running);
  expect(statuses).toEqual({ stop: 403, sleep: 403, deploy: 403, group: 403 });
  const stopped = await request.post('/orchestrator/v1/command/stop', { headers: admin, data: { job: running, force: true } });
  expect(stopped.status()).toBe(202);
});

test('sign out ends the session on the server', async ({ page, context }) => {
  await signIn(page, adminToken());
  const csrf = await page.evaluate(() => session.csrf);
  const cookie = (await context.cookies()).find((c) => c.name === 'baton_session');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByRole('heading', { name: 'Sign in to Baton' })).toBeVisible();
  await expect(page.locator('#nav')).toBeHidden();
  expect((await context.cookies()).find((c) => c.name === 'baton_session')).toBeUndefined();
  // The old session cookie, put back by hand, no longer works: the session token was revoked.
  await context.addCookies([cookie]);
  const status = await page.evaluate(async (c) => (await fetch('/baton/v1/whoami', { headers: { 'X-Baton-CSRF': c } })).status, csrf);
  expect(status).toBe(401);
});

// Accessibility: axe-core's WCAG 2.x A and AA rules (labels, names, contrast, landmarks, ARIA)
// on every page, the sign-in page and a form showing a validation error included.
test('every page passes axe-core\'s WCAG A and AA checks', async ({ page }) => {
  const check = async (what) => {
    const r = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
    const found = r.violations.map((v) => `${what}: ${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
    expect(found, what).toEqual([]);
    expect(r.passes.length, `${what}: axe ran its checks`).toBeGreaterThanOrEqual(10);
  };
  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'Sign in to Baton' })).toBeVisible();
  await check('sign in');
  await signIn(page, adminToken());
  await check('jobs');
  await page.getByRole('link', { name: 'Job 1', exact: true }).click();
  await expect(page.locator('#nodes-table')).toBeVisible();
  await page.getByRole('button', { name: 'Show node web1' }).click();
  await expect(page.locator('#node-result-json')).toBeVisible();
  await check('a job');
  await chooseTask(page, 'demo::sleep');
  await page.getByLabel('seconds').fill('-1');
  await targetNodes(page, 'web1');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await expect(page.locator('#param-seconds-error')).toBeVisible();
  await check('run a task, with a validation error');
  for (const [link, ready] of [['Run Puppet', '#puppet-form'], ['Inventory', '#inventory-table'], ['Node groups', '#groups-table']]) {
    await page.getByRole('link', { name: link }).click();
    await expect(page.locator(ready)).toBeVisible();
    await check(link);
  }
  await page.goto('/#/inventory/web1');
  await expect(page.getByRole('heading', { name: 'Node web1' })).toBeVisible();
  await check('a node');
});

// Last, as it adds 2,000 nodes to the inventory: they are enrolled but never connect, so each
// ends errored after the server's --connect-timeout (1 s here) — 2,000 node changes that the
// page applies from the events, showing one page of 50 rows.
test('a large job stays fast: 2,000 nodes, paginated, updated from the events', async ({ page, request }) => {
  test.setTimeout(240_000);
  const N = Number(process.env.BATON_LARGE_JOB || 2000); // BATON_LARGE_JOB=10000 to measure more
  const admin = { 'X-Authentication': adminToken() };
  const names = Array.from({ length: N }, (_, i) => `big${String(i).padStart(5, '0')}`);
  const enrolled = await request.post('/baton/v1/nodes/enrollments', { headers: admin, data: { names } });
  expect(enrolled.status()).toBe(201);
  await signIn(page, adminToken());
  const started = await request.post('/orchestrator/v1/command/task', { headers: admin,
    data: { task: 'demo::hello', params: {}, scope: { nodes: names }, description: '2,000 nodes' } });
  expect(started.status()).toBe(202);
  const id = (await started.json()).job.name;

  const t0 = Date.now();
  await page.goto(`/#/jobs/${id}`);
  await expect(page.locator('#nodes-table tbody tr')).toHaveCount(50);
  const firstPaint = Date.now() - t0;
  await expect(page.locator('#job-counts')).toContainText(`errored: ${N}`, { timeout: 200_000 });
  await expect(page.locator('#nodes-table tbody tr')).toHaveCount(50);
  await expect(page.locator('#nodes-table caption')).toHaveText(`${N} nodes; page 1 of ${N / 50}`);
  await expect(page.locator('#events-table tbody tr')).toHaveCount(200); // the latest events only
  // One event per node and the job's own. The counts come from the job, read after the events
  // in each poll, so they can be one poll ahead of the events: wait for the next poll.
  const eventTotal = async () => {
    const caption = await page.locator('#events-table caption').textContent();
    return Number((caption.match(/^The latest 200 of (\d+) events$/) || [])[1]);
  };
  await expect.poll(eventTotal, { timeout: 10_000 }).toBeGreaterThanOrEqual(N);
  const beforeNext = requests.filter((u) => new RegExp(`/jobs/${id}/nodes(\\?|$)`).test(u)).length;
  await page.getByRole('button', { name: 'Next nodes' }).click();
  await expect(page.locator('#nodes-table caption')).toHaveText(`${N} nodes; page 2 of ${N / 50}`);
  await expect(page.locator('#nodes-table tbody tr').first()).toContainText('big00050');
  await expect(page.locator('#nodes-table tbody tr').last()).toContainText('big00099');
  // A state filter is applied by the server, one page at a time.
  await page.getByLabel('Show nodes in state').selectOption('errored');
  await expect(page.locator('#nodes-table caption')).toHaveText(`${N} nodes in state errored; page 1 of ${N / 50}`);
  await page.getByLabel('Show nodes in state').selectOption('finished');
  await expect(page.locator('#nodes-table caption')).toHaveText('0 nodes in state finished; page 1 of 1');
  await expect(page.locator('#nodes-table tbody tr')).toHaveCount(0);

  // The node table was read a page at a time (limit=50), never whole: once when the page
  // opened, once when the job ended (for the results), then once per page or filter change.
  const nodeLists = requests.filter((u) => new RegExp(`/jobs/${id}/nodes(\\?|$)`).test(u));
  const eventPolls = requests.filter((u) => new RegExp(`/jobs/${id}/events\\?start=`).test(u));
  expect(beforeNext, nodeLists.join('\n')).toBeLessThanOrEqual(2);
  expect(nodeLists.length, nodeLists.join('\n')).toBe(beforeNext + 3);
  for (const u of nodeLists) expect(new URL(u).searchParams.get('limit'), u).toBe('50');
  // The page's own work per update stays small: time spent in long tasks (over 50 ms).
  const longTasks = await page.evaluate(() => new Promise((resolve) => {
    let total = 0;
    new PerformanceObserver((l) => { for (const e of l.getEntries()) total += e.duration; }).observe({ type: 'longtask', buffered: true });
    setTimeout(() => resolve(total), 100);
  }));
  console.log(`large job: ${N} nodes; first page of rows shown ${firstPaint} ms after opening; ` +
    `${nodeLists.length} node-list reads, ${eventPolls.length} event polls; ${Math.round(longTasks)} ms in long tasks`);
  await page.getByLabel('Show nodes in state').selectOption('');
  await expect(page.locator('#nodes-table tbody tr')).toHaveCount(50);
});
