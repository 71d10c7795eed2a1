'use strict';
/*
 * One benchmark scenario of node-agent-sdk@1.2.0 (the peer), unmodified, in its own process:
 *
 *   NODE_PATH=tests/conformance/node/node_modules NODE_EXTRA_CA_CERTS=<emulator CA> \
 *     node benchmarks/node/peer_bench.js SCENARIO '<params JSON>'
 *
 * The mirror of benchmarks/py_client.py: stdout carries JSON lines, {"event":"ready"} when the
 * harness may act on the emulator, then one {"event":"result",...}. Where node-agent-sdk has no
 * feature of our SDK (an object model, reconnection, a request queue), this driver does what an
 * application using it has to do itself, in the simplest way (a Map of conversations, reconnect
 * on 'closed', resubscribe on 'connected', send the waiting request afterwards).
 */

const {Agent} = require('node-agent-sdk');

const scenario = process.argv[2];
const p = JSON.parse(process.argv[3]);
const TEXT = {type: 'ContentEvent', contentType: 'text/plain', message: 'bench'};

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

function cpuSeconds() {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
}

function ms(start) {
    return Number(process.hrtime.bigint() - start) / 1e6;
}

/** What the sockets of this run negotiated, as ws reports it (client side): see dispose(). */
const extensionsSeen = new Set();

function newAgent() {
    const conf = {
        accountId: p.account_id,
        username: p.username,
        password: p.password,
        csdsDomain: p.csds_domain,
    };
    // node-agent-sdk hands its whole config to `new WebSocket(url, config)` (ws 1.x), whose
    // perMessageDeflate defaults to true; without compression the option turns it off.
    if (!p.compression) conf.perMessageDeflate = false;
    const agent = new Agent(conf);
    agent.on('error', () => {});
    return agent;
}

function dispose(agent) {
    const ws = agent.transport && agent.transport.ws;
    if (ws) extensionsSeen.add(Object.keys(ws.extensions || {}).join(',') || 'none');
    agent.dispose();
}

function negotiated() {
    return [...extensionsSeen];
}

function connected(agent) {
    return new Promise((resolve) => agent.once('connected', resolve));
}

function call(agent, method, body) {
    return new Promise((resolve, reject) => {
        agent[method](body, (err, resp) => (err ? reject(new Error(`${method}: ${JSON.stringify(err)}`)) : resolve(resp)));
    });
}

async function sequential(n, fn) {
    const samples = [];
    for (let i = 0; i < n; i++) {
        const start = process.hrtime.bigint();
        await fn();
        samples.push(ms(start));
    }
    return samples;
}

function publish(agent, conv) {
    return call(agent, 'publishEvent', {dialogId: conv, conversationId: conv, event: TEXT});
}

async function connect() {
    const samples = [];
    for (let i = 0; i < p.iterations; i++) {
        const start = process.hrtime.bigint();
        const agent = newAgent();
        await connected(agent);
        await call(agent, 'getClock', {});
        samples.push(ms(start));
        dispose(agent);
    }
    return {samples_ms: samples, extensions: negotiated()};
}

async function rtt() {
    const agent = newAgent();
    await connected(agent);
    await subscribeConversations(agent, new Map());
    const conv = p.conversations[0];
    await sequential(p.warmup, () => call(agent, 'getClock', {}));
    const clock = await sequential(p.n, () => call(agent, 'getClock', {}));
    await sequential(p.warmup, () => publish(agent, conv));
    const pub = await sequential(p.n, () => publish(agent, conv));
    dispose(agent);
    return {get_clock_ms: clock, publish_ms: pub, extensions: negotiated()};
}

async function pipeline() {
    const agent = newAgent();
    await connected(agent);
    await subscribeConversations(agent, new Map());
    const convs = p.conversations;
    async function run(total) {
        let next = 0;
        async function worker() {
            while (next < total) {
                const i = next++;
                await publish(agent, convs[i % convs.length]);
            }
        }
        const workers = [];
        for (let i = 0; i < p.inflight; i++) workers.push(worker());
        await Promise.all(workers);
    }
    await run(p.warmup);
    const cpu0 = cpuSeconds();
    const t0 = process.hrtime.bigint();
    const w0 = Date.now() / 1000;
    await run(p.total);
    const seconds = ms(t0) / 1000;
    const cpu = cpuSeconds() - cpu0;
    const w1 = Date.now() / 1000;
    dispose(agent);
    return {seconds, cpu_seconds: cpu, messages: p.total, window: [w0, w1], extensions: negotiated()};
}

/** Subscribe to the open conversations and keep them in a Map, as an application would. */
async function subscribeConversations(agent, conversations) {
    agent.on('cqm.ExConversationChangeNotification', (body) => {
        for (const change of body.changes || []) {
            if (change.type === 'DELETE') conversations.delete(change.result.convId);
            else conversations.set(change.result.convId, change.result);
        }
    });
    const first = new Promise((resolve) => agent.once('cqm.ExConversationChangeNotification', resolve));
    await call(agent, 'subscribeExConversations', {convState: ['OPEN']});
    await first;
}

async function ingest() {
    const agent = newAgent();
    await connected(agent);
    const conversations = new Map();
    await subscribeConversations(agent, conversations);
    const firstMeasured = p.warmup + 1;
    let count = 0;
    let target = p.warmup;
    let t0 = 0n;
    let cpu0 = 0;
    let w0 = 0;
    let reached = () => {};
    agent.on('ms.MessagingEventNotification', (body) => {
        for (const change of body.changes || []) {
            if (!change.event || change.event.type !== 'ContentEvent') continue;
            count++;
            if (count === firstMeasured) {
                t0 = process.hrtime.bigint();
                cpu0 = cpuSeconds();
                w0 = Date.now() / 1000;
            }
            if (count === target) reached([process.hrtime.bigint(), cpuSeconds(), Date.now() / 1000]);
        }
    });
    const until = () => new Promise((resolve) => (reached = resolve));
    if (p.warmup) {
        const warm = until();
        emit({event: 'ready', phase: 'warmup', known: conversations.size});
        await withTimeout(warm, p.timeout);
    }
    target = p.warmup + p.events;
    const done = until();
    emit({event: 'ready', phase: 'measure', known: conversations.size});
    const [t1, cpu1, w1] = await withTimeout(done, p.timeout);
    dispose(agent);
    return {
        events: p.events - 1,
        seconds: Number(t1 - t0) / 1e9,
        cpu_seconds: cpu1 - cpu0,
        known_conversations: conversations.size,
        window: [w0, w1],
        extensions: negotiated(),
    };
}

/**
 * Fetch the messages of every dialog in `ids` newer than the last sequence seen, CONCURRENCY
 * queries in flight, each dialog paged until a page brings nothing newer: the same
 * ms.QueryMessages our SDK sends (get_all_messages, and its catch-up after a reconnect).
 * node-agent-sdk's subscribeMessagingEvents is that query (.ams.ms.QueryMessages,
 * newerThanSequence = fromSeq; 0 = from the start); the answer comes out as an
 * ms.MessagingEventNotification (the callback gets no body), so `cursors` (dialog id -> last
 * sequence seen) is kept by trackCursors().
 */
const CONCURRENCY = 32;
/** The catch-up after a reconnect: as many in flight as ours (CATCH_UP_CONCURRENCY in brand.py). */
const CATCH_UP_CONCURRENCY = 128;

async function queryHistories(agent, ids, cursors, concurrency = CONCURRENCY) {
    let next = 0;
    async function worker() {
        while (next < ids.length) {
            const id = ids[next++];
            let cursor = cursors.has(id) ? cursors.get(id) : 0;
            for (;;) {
                await call(agent, 'subscribeMessagingEvents', {dialogId: id, conversationId: id, fromSeq: cursor});
                const top = cursors.has(id) ? cursors.get(id) : -1;
                if (top <= cursor) break;
                cursor = top;
            }
        }
    }
    const workers = [];
    for (let i = 0; i < Math.min(concurrency, ids.length); i++) workers.push(worker());
    await Promise.all(workers);
}

/** Keep every message of the notifications in per-dialog lists, and the last sequence of each. */
function keepMessages(agent, messages, cursors) {
    agent.on('ms.MessagingEventNotification', (body) => {
        for (const change of body.changes || []) {
            if (messages) {
                let list = messages.get(change.dialogId);
                if (!list) messages.set(change.dialogId, (list = []));
                list.push(change);
            }
            if (typeof change.sequence === 'number' && change.sequence > (cursors.get(change.dialogId) ?? -1)) {
                cursors.set(change.dialogId, change.sequence);
            }
        }
    });
}

async function history() {
    const agent = newAgent();
    await connected(agent);
    const conversations = new Map();
    const messages = new Map();
    const cursors = new Map();
    keepMessages(agent, messages, cursors);
    const cpu0 = cpuSeconds();
    const t0 = process.hrtime.bigint();
    const w0 = Date.now() / 1000;
    await subscribeConversations(agent, conversations);
    await withTimeout(queryHistories(agent, [...conversations.keys()], cursors), p.timeout);
    const seconds = ms(t0) / 1000;
    const cpu = cpuSeconds() - cpu0;
    const w1 = Date.now() / 1000;
    let loaded = 0;
    for (const list of messages.values()) if (list.length >= p.messages) loaded++;
    if (loaded < p.conversations) throw new Error(`only ${loaded} of ${p.conversations} conversations loaded their history`);
    const rss = process.memoryUsage().rss;
    dispose(agent);
    return {seconds, cpu_seconds: cpu, rss_bytes: rss, conversations: loaded, window: [w0, w1], extensions: negotiated()};
}

async function memory() {
    const idle = newAgent();
    await connected(idle);
    await call(idle, 'getClock', {});
    const idleRss = process.memoryUsage().rss;
    dispose(idle);
    const agent = newAgent();
    const t0 = process.hrtime.bigint();
    await connected(agent);
    const conversations = new Map();
    const messages = new Map();
    const cursors = new Map();
    keepMessages(agent, messages, cursors);
    await subscribeConversations(agent, conversations);
    await withTimeout(queryHistories(agent, [...conversations.keys()], cursors), p.timeout);
    let loaded = 0;
    for (const list of messages.values()) if (list.length >= p.messages) loaded++;
    if (loaded < p.conversations) throw new Error(`only ${loaded} of ${p.conversations} conversations loaded their history`);
    const seconds = ms(t0) / 1000;
    const rss = process.memoryUsage().rss;
    dispose(agent);
    return {rss_bytes: rss, idle_rss_bytes: idleRss, load_seconds: seconds, conversations: conversations.size, extensions: negotiated()};
}

/**
 * The emulator drops the socket; the driver does what our SDK does on its own: reconnect at once,
 * resubscribe (conversations, waiting for the snapshot as ours does; routing tasks), catch up
 * the history of every open conversation from the last sequence seen (the same ms.QueryMessages
 * as ours, as many in flight as ours: CATCH_UP_CONCURRENCY), then send the request that waited.
 */
async function recovery() {
    const agent = newAgent();
    await connected(agent);
    const conversations = new Map();
    await subscribeConversations(agent, conversations);
    await call(agent, 'subscribeRoutingTasks', {});
    const cursors = new Map();
    keepMessages(agent, null, cursors);
    const marks = {};
    const done = new Promise((resolve, reject) => {
        agent.once('closed', () => {
            marks.disconnect = process.hrtime.bigint();
            agent.once('connected', async () => {
                marks.socket = process.hrtime.bigint();
                try {
                    const snapshot = new Promise((res) => agent.once('cqm.ExConversationChangeNotification', res));
                    await Promise.all([
                        call(agent, 'subscribeExConversations', {convState: ['OPEN']}),
                        call(agent, 'subscribeRoutingTasks', {}),
                        snapshot,
                    ]);
                    if (p.catch_up !== false) {
                        await queryHistories(agent, [...conversations.keys()], cursors, CATCH_UP_CONCURRENCY);
                    }
                    marks.restored = process.hrtime.bigint();
                    await call(agent, 'getClock', {});
                    marks.request = process.hrtime.bigint();
                    resolve();
                } catch (e) {
                    reject(e);
                }
            });
            agent.reconnect(true);
        });
    });
    emit({event: 'ready', known: conversations.size});
    await withTimeout(done, p.timeout);
    dispose(agent);
    const d = (a, b) => Number(a - b) / 1e6;
    return {
        total_ms: d(marks.request, marks.disconnect),
        after_reconnect_ms: d(marks.request, marks.socket),
        subscriptions_ms: d(marks.restored, marks.disconnect),
        known_conversations: conversations.size,
        extensions: negotiated(),
    };
}

function withTimeout(promise, seconds) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${seconds}s`)), seconds * 1000);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const SCENARIOS = {connect, rtt, pipeline, ingest, history, memory, recovery};

withTimeout(SCENARIOS[scenario](), p.timeout)
    .then((result) => {
        emit({event: 'result', client: 'peer', scenario, rss_bytes_end: process.memoryUsage().rss, ...result});
        process.exit(0);
    })
    .catch((err) => {
        emit({event: 'error', message: err && err.stack ? err.stack : String(err)});
        process.exit(1);
    });
