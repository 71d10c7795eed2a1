'use strict';
/*
 * Line-oriented driver for LivePerson's node-agent-sdk (the "peer"), used unmodified by the
 * Python conformance tests (tests/conformance/peer.py).
 *
 * stdin: one JSON command per line
 *   {"cmd":"connect","conf":{accountId, username, password, csdsDomain, ...}}
 *   {"cmd":"call","id":"c1","method":"setAgentState","body":{...}
 *          [,"headers":..., "metadata":..., "encodedMetadata":...]}
 *   {"cmd":"reconnect","dontRegenerateToken":false}
 *   {"cmd":"info","id":"i1"}          -> {"event":"info","id":"i1","data":{agentId, userId, ...}}
 *   {"cmd":"dispose"}
 *   {"cmd":"exit"}                    (also on stdin EOF)
 *
 * stdout: one JSON object per line
 *   {"event":"ready"}                                    once, at start
 *   {"event":"<sdk event>","data":<first arg>,"args":[<more args>]}   every event the Agent emits
 *   {"event":"callback","id":"c1","err":...,"resp":...}  request callbacks
 *   {"event":"driver_error","message":...}               a command could not be executed
 *   {"event":"fatal","message":...,"stack":...}          uncaught exception (the driver exits 1)
 *
 * Every line is written synchronously (stdout is a pipe, which Node writes synchronously on
 * POSIX), so a line is visible to the test as soon as the event happens.
 */

const readline = require('readline');
const {Agent} = require('node-agent-sdk');

let agent = null;

// ------------------------------------------------------------------ JSON-safe serialization

/**
 * Converts anything the SDK emits into plain JSON: Errors keep message/name/code and their own
 * properties (SDKError.code, TransformError.payload), functions (the SDK attaches isMe() and
 * getMyRole() to bodies) become "[Function name]", cycles become "[Circular]", undefined -> null.
 */
function toJSONSafe(value, seen) {
    seen = seen || new WeakSet();
    if (value === undefined) return null;
    if (value === null || typeof value === 'boolean' || typeof value === 'string') return value;
    if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
    if (typeof value === 'bigint') return value.toString();
    if (typeof value === 'function') return `[Function ${value.name || 'anonymous'}]`;
    if (typeof value === 'symbol') return value.toString();
    if (Buffer.isBuffer(value)) return {buffer: value.toString('utf8')};
    if (seen.has(value)) return '[Circular]';
    seen.add(value);
    try {
        if (value instanceof Error) {
            const out = {name: value.name, message: toJSONSafe(value.message, seen)};
            for (const key of Object.keys(value)) {
                if (key !== 'stack') out[key] = toJSONSafe(value[key], seen);
            }
            if (!('code' in out)) out.code = null;
            return out;
        }
        if (Array.isArray(value)) return value.map(v => toJSONSafe(v, seen));
        const out = {};
        for (const key of Object.keys(value)) {
            // Undefined properties are dropped, as on the wire (JSON.stringify). A function-valued
            // property is reported, not dropped, so tests can see that the SDK attached it,
            // e.g. "isMe": "[Function isMe]".
            if (value[key] !== undefined) out[key] = toJSONSafe(value[key], seen);
        }
        return out;
    } finally {
        // Only ancestors count as cycles: the same object may legitimately appear twice.
        seen.delete(value);
    }
}

function print(obj) {
    let line;
    try {
        line = JSON.stringify(toJSONSafe(obj));
    } catch (e) {
        line = JSON.stringify({event: 'driver_error', message: `cannot serialize: ${e.message}`});
    }
    process.stdout.write(line + '\n');
}

// ------------------------------------------------------------------ observing the agent

/**
 * Reports every event the agent emits. The SDK emits events whose names are only known at run
 * time (every response type, every untransformed notification type), so listening to a fixed
 * list would miss some; instead the instance's emit is wrapped. The wrapper only observes and
 * then calls the original, so the SDK's behaviour is unchanged.
 */
function observe(a) {
    const originalEmit = a.emit;
    a.emit = function (name, ...args) {
        print({event: String(name), data: args[0], args: args.slice(1)});
        return originalEmit.apply(this, [name, ...args]);
    };
    // Without an 'error' listener EventEmitter throws and the process dies (spec §2.4); the
    // test needs to see errors as events instead.
    a.on('error', () => {});
}

// ------------------------------------------------------------------ commands

function requireAgent() {
    if (!agent) throw new Error('no agent: send {"cmd":"connect"} first');
    return agent;
}

function call(cmd) {
    const a = requireAgent();
    const fn = a[cmd.method];
    if (typeof fn !== 'function') throw new Error(`the agent has no request method ${cmd.method}`);
    const callback = (err, resp) => print({event: 'callback', id: cmd.id, err: err, resp: resp});
    const args = [cmd.body];
    // Optional positional arguments are passed only when given, as an app would.
    if ('headers' in cmd || 'metadata' in cmd || 'encodedMetadata' in cmd) {
        args.push(cmd.headers, cmd.metadata, cmd.encodedMetadata);
    }
    args.push(callback);
    try {
        fn.apply(a, args);
    } catch (e) {
        print({event: 'callback', id: cmd.id, err: {thrown: true, message: e.message}, resp: null});
    }
}

function info(cmd) {
    const a = agent;
    print({
        event: 'info',
        id: cmd.id,
        data: a ? {
            agentId: a.agentId,
            userId: a.userId,
            oldAgentId: a.__oldAgentId,
            accountId: a.accountId,
            connected: !!a.connected,
            hasToken: !!a.token,
            hasCsrf: !!a.csrf,
        } : null,
    });
}

function shutdown(code) {
    if (agent) {
        try {
            agent.dispose();
        } catch (e) {
            // the process is going away anyway
        }
        agent = null;
    }
    process.exit(code);
}

function handle(cmd) {
    switch (cmd.cmd) {
        case 'connect':
            if (agent) throw new Error('already connected: dispose first');
            // The constructor starts connecting at once (CSDS -> login -> WS); every event is
            // emitted asynchronously, so observing right after construction misses nothing.
            agent = new Agent(cmd.conf);
            observe(agent);
            break;
        case 'call':
            call(cmd);
            break;
        case 'reconnect':
            requireAgent().reconnect(cmd.dontRegenerateToken);
            break;
        case 'dispose':
            if (agent) agent.dispose();
            agent = null;
            print({event: 'disposed'});
            break;
        case 'info':
            info(cmd);
            break;
        case 'exit':
            shutdown(0);
            break;
        default:
            throw new Error(`unknown command ${cmd.cmd}`);
    }
}

process.on('uncaughtException', (err) => {
    print({event: 'fatal', message: err && err.message, stack: err && err.stack});
    process.exit(1);
});

const rl = readline.createInterface({input: process.stdin, terminal: false});
rl.on('line', (line) => {
    if (!line.trim()) return;
    let cmd;
    try {
        cmd = JSON.parse(line);
    } catch (e) {
        print({event: 'driver_error', message: `bad JSON command: ${e.message}`, line: line});
        return;
    }
    try {
        handle(cmd);
    } catch (e) {
        print({event: 'driver_error', message: e.message, cmd: cmd.cmd, id: cmd.id});
    }
});
rl.on('close', () => shutdown(0));

print({event: 'ready', data: {node: process.version, sdk: require('node-agent-sdk/package.json').version}});
