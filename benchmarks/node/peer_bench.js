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

function newAgent() {
    const agent = new Agent({
        accountId: p.account_id,
        username: p.username,
        password: p.password,
        csdsDomain: p.csds_domain,
    });
    agent.on('error', () => {});
    return agent;
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
        agent.dispose();
    }
    return {samples_ms: samples};
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
    agent.dispose();
    return {get_clock_ms: clock, publish_ms: pub};
}

async function pipeline() {
    const agent = newAgent();
    await connected(agent);
    await subscribeConversations(agent, new Map());
    const convs = p.conversations;
    for (const conv of convs.slice(0, 10)) await publish(agent, conv);
    let next = 0;
    const cpu0 = cpuSeconds();
    const t0 = process.hrtime.bigint();
    const w0 = Date.now() / 1000;
    async function worker() {
        while (next < p.total) {
            const i = next++;
            await publish(agent, convs[i % convs.length]);
        }
    }
    const workers = [];
    for (let i = 0; i < p.inflight; i++) workers.push(worker());
    await Promise.all(workers);
    const seconds = ms(t0) / 1000;
    const cpu = cpuSeconds() - cpu0;
    const w1 = Date.now() / 1000;
    agent.dispose();
    return {seconds, cpu_seconds: cpu, messages: p.total, window: [w0, w1]};
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
    let count = 0;
    let t0 = 0n;
    let cpu0 = 0;
    let w0 = 0;
    const done = new Promise((resolve) => {
        agent.on('ms.MessagingEventNotification', (body) => {
            for (const change of body.changes || []) {
                if (!change.event || change.event.type !== 'ContentEvent') continue;
                if (count === 0) {
                    t0 = process.hrtime.bigint();
                    cpu0 = cpuSeconds();
                    w0 = Date.now() / 1000;
                }
                count++;
                if (count === p.events) resolve([process.hrtime.bigint(), cpuSeconds(), Date.now() / 1000]);
            }
        });
    });
    emit({event: 'ready', known: conversations.size});
    const [t1, cpu1, w1] = await withTimeout(done, p.timeout);
    agent.dispose();
    return {
        events: p.events - 1,
        seconds: Number(t1 - t0) / 1e9,
        cpu_seconds: cpu1 - cpu0,
        known_conversations: conversations.size,
        window: [w0, w1],
    };
}

async function memory() {
    const idle = newAgent();
    await connected(idle);
    await call(idle, 'getClock', {});
    const idleRss = process.memoryUsage().rss;
    idle.dispose();
    const agent = newAgent();
    const t0 = process.hrtime.bigint();
    await connected(agent);
    const conversations = new Map();
    const messages = new Map();
    let loaded = 0;
    const all = new Promise((resolve) => {
        agent.on('ms.MessagingEventNotification', (body) => {
            for (const change of body.changes || []) {
                let list = messages.get(change.dialogId);
                if (!list) messages.set(change.dialogId, (list = []));
                list.push(change);
                if (list.length === p.messages && ++loaded === p.conversations) resolve();
            }
        });
    });
    await subscribeConversations(agent, conversations);
    // History: replayed by ms.SubscribeMessagingEvents, 100 requests in flight.
    const ids = [...conversations.keys()];
    let next = 0;
    async function worker() {
        while (next < ids.length) {
            const id = ids[next++];
            await call(agent, 'subscribeMessagingEvents', {dialogId: id, conversationId: id, fromSeq: 0});
        }
    }
    const workers = [];
    for (let i = 0; i < 100; i++) workers.push(worker());
    await Promise.all(workers);
    await withTimeout(all, p.timeout);
    const seconds = ms(t0) / 1000;
    const rss = process.memoryUsage().rss;
    agent.dispose();
    return {rss_bytes: rss, idle_rss_bytes: idleRss, load_seconds: seconds, conversations: conversations.size};
}

async function recovery() {
    const agent = newAgent();
    await connected(agent);
    const conversations = new Map();
    await subscribeConversations(agent, conversations);
    await call(agent, 'subscribeRoutingTasks', {});
    const marks = {};
    const done = new Promise((resolve, reject) => {
        agent.once('closed', () => {
            marks.disconnect = process.hrtime.bigint();
            agent.once('connected', async () => {
                marks.socket = process.hrtime.bigint();
                try {
                    // What the application must restore itself, then its waiting request.
                    await Promise.all([
                        call(agent, 'subscribeExConversations', {convState: ['OPEN']}),
                        call(agent, 'subscribeRoutingTasks', {}),
                    ]);
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
    agent.dispose();
    const d = (a, b) => Number(a - b) / 1e6;
    return {
        total_ms: d(marks.request, marks.disconnect),
        after_reconnect_ms: d(marks.request, marks.socket),
        subscriptions_ms: d(marks.restored, marks.disconnect),
        known_conversations: conversations.size,
    };
}

function withTimeout(promise, seconds) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${seconds}s`)), seconds * 1000);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const SCENARIOS = {connect, rtt, pipeline, ingest, memory, recovery};

SCENARIOS[scenario]()
    .then((result) => {
        emit({event: 'result', client: 'peer', scenario, rss_bytes_end: process.memoryUsage().rss, ...result});
        process.exit(0);
    })
    .catch((err) => {
        emit({event: 'error', message: err && err.stack ? err.stack : String(err)});
        process.exit(1);
    });
