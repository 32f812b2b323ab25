import { expect, type APIRequestContext } from '@playwright/test';

// What the Sentry SDK tests share: the server of global-setup.ts, a new app with its key, and
// the GraphQL read API to check what a team would see.
export const baseURL = process.env.ROLLWATCH_URL ?? '';
const admin = { email: process.env.E2E_ADMIN_EMAIL ?? '', password: process.env.E2E_ADMIN_PASSWORD ?? '' };

export async function gql(request: APIRequestContext, token: string | null, query: string, variables = {}) {
  const response = await request.post(`${baseURL}/graphql`, {
    headers: token ? { Authorization: `Bearer ${token}` } : {},
    data: { query, variables },
  });
  expect(response.status()).toBe(200);
  const body = await response.json();
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return body.data;
}

/** A new app of the admin's account, its report key, and the DSN a Sentry SDK takes. */
export async function newApp(request: APIRequestContext, name: string) {
  const token: string = (
    await gql(request, null, 'mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }', {
      e: admin.email,
      p: admin.password,
    })
  ).login.token;
  const id: string = (await gql(request, token, 'mutation($n: String!) { createApp(name: $n) { id } }', { n: name }))
    .createApp.id;
  const key: string = (await gql(request, token, 'mutation($a: ID!) { rotateReportKey(appId: $a) { key } }', { a: id }))
    .rotateReportKey.key;
  const dsn = `http://${key}@${new URL(baseURL).host}/${id}`;
  return { id, key, token, dsn };
}

export type Group = {
  version: string;
  channel: string;
  platform: string;
  arch: string;
  eventType: string;
  reason: string;
  count: number;
};

export async function groups(request: APIRequestContext, token: string, appId: string): Promise<Group[]> {
  const data = await gql(
    request,
    token,
    'query($a: ID!) { reportGroups(appId: $a) { edges { node { version channel platform arch eventType reason count } } } }',
    { a: appId },
  );
  return data.reportGroups.edges.map((edge: { node: Group }) => edge.node);
}

export async function health(request: APIRequestContext, token: string, appId: string, groupBy: string[]) {
  const data = await gql(
    request,
    token,
    'query($a: ID!, $by: [Dimension!]!) { rolloutHealth(appId: $a, groupBy: $by) { version channel platform arch crashes sessions crashRate } }',
    { a: appId, by: groupBy },
  );
  return data.rolloutHealth;
}
