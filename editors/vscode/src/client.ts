// The pycell protocol client: spawns `pycell serve`, speaks JSON-RPC 2.0 over LSP
// (Content-Length) framing with vscode-jsonrpc, and offers typed calls for every method the
// extension uses. It must not import `vscode`: node's test runner loads it on its own and
// drives the real server with it (test/client.test.mjs).
//
// The contract is docs/PROTOCOL.md at the root of the pycell repository.

import { spawn, ChildProcess } from "child_process";
import { randomUUID } from "crypto";
import {
  CancellationTokenSource,
  ErrorCodes,
  MessageConnection,
  ResponseError,
  StreamMessageReader,
  StreamMessageWriter,
  createMessageConnection,
} from "vscode-jsonrpc/node";

export { ResponseError };

// ---------------------------------------------------------------------------------------
// Wire types (docs/PROTOCOL.md, sections 2 to 4)

/** JSON-RPC error codes pycell uses. */
export const RpcErrorCodes = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  SandboxUnavailable: -32000,
  TooManyQueued: -32001,
  ServerNotInitialized: -32002,
  RequestCancelled: -32800,
} as const;

export interface Limits {
  timeoutMs?: number;
  cpuMs?: number;
  memoryMb?: number;
  maxOutputBytes?: number;
  maxProcesses?: number;
  diskMb?: number;
}

export interface Isolation {
  level: "isolated" | "degraded";
  userNamespace?: boolean;
  pidNamespace?: boolean;
  mountNamespace?: boolean;
  networkNamespace?: boolean;
  ipcNamespace?: boolean;
  utsNamespace?: boolean;
  seccomp?: boolean;
  cgroup?: "v2" | "v1" | "none";
  memoryLimit?: "cgroup" | "per-process";
  cpuLimit?: "cgroup" | "per-process";
  writableBinds?: "owner" | "server" | "nobody" | "mixed";
  pidsLimit?: "cgroup" | "per-sandbox" | "per-user";
  [key: string]: unknown;
}

/** The languages pycell runs. */
export type Language = "python" | "javascript";

export interface ProfileInfo {
  name: string;
  description?: string;
  limits?: Limits;
  /** The language the profile's sandboxes run; a server that does not say runs Python only. */
  language?: Language;
}

/** The language a profile serves ("python" when the server does not say). */
export function profileLanguage(p: ProfileInfo): Language {
  return p.language ?? "python";
}

export interface InitializeResult {
  serverInfo: { name: string; version?: string };
  capabilities: Record<string, unknown>;
  isolation: Isolation;
  profiles: ProfileInfo[];
  protocolVersion?: number;
}

export interface ExecuteParams {
  code: string;
  /** Absent: the profile's language; without a profile, "javascript" runs in the built-in "javascript". */
  language?: Language;
  profile?: string;
  session?: string;
  executionId?: string;
  inputs?: unknown;
  stdin?: string;
  files?: Record<string, { text: string } | { base64: string }>;
  limits?: Limits;
  network?: boolean;
  stream?: boolean;
  returnFiles?: string[];
}

export type ExecuteStatus =
  | "ok"
  | "error"
  | "timeout"
  | "memory_limit"
  | "output_limit"
  | "killed"
  | "crashed"
  | "policy_violation";

export interface ExecuteError {
  type: string;
  message: string;
  traceback: string[];
  /** 1-based line in the executed code, or null when the error is not in it. */
  line: number | null;
}

export interface Usage {
  wallMs?: number;
  cpuUserMs?: number;
  cpuSysMs?: number;
  peakMemoryBytes?: number;
}

/** A mime bundle: `{"image/png": "<base64>", "text/plain": "<Figure ...>"}`. */
export type MimeBundle = Record<string, string>;

export interface ExecuteResult {
  executionId: string;
  status: ExecuteStatus;
  exitCode: number | null;
  signal: number | string | null;
  stdout: string;
  stderr: string;
  truncated: { stdout: boolean; stderr: boolean };
  value: unknown;
  valueRepr: string | null;
  displays: MimeBundle[];
  error: ExecuteError | null;
  files?: { path: string; size: number; base64: string }[];
  usage: Usage;
  samples?: { tMs: number; cpuMs: number; rssBytes: number }[];
  activity?: unknown;
  /** Present for a run in a session: did the session (and its state) survive the run? */
  session?: { id: string; alive: boolean };
}

export interface SessionInfo {
  session: string;
  profile: string;
  state: "starting" | "idle" | "busy" | "closing";
  executions: number;
  ageMs: number;
  idleMs: number;
  pooled: boolean;
  limits: Limits;
}

export interface OutputNotification {
  executionId: string;
  stream: "stdout" | "stderr";
  text: string;
}

export interface UsageNotification {
  executionId: string;
  tMs: number;
  cpuMs: number;
  rssBytes: number;
}

export interface LogMessage {
  /** LSP MessageType: 1 error, 2 warning, 3 info, 4 log. */
  type: number;
  message: string;
}

export interface KillResult {
  killed: boolean;
  state: string;
}

export interface PoolStatus {
  profile: string;
  ready: number;
  target: number;
  starting?: number;
  waiting?: number;
  zygotePid?: number | null;
  zygoteReady?: boolean;
  forksServed?: number;
  zygoteStarts?: number;
  preloaded?: string[];
  preloadFailed?: Record<string, string>;
  [key: string]: unknown;
}

/** One execution queued or running, as the status summary lists it. */
export interface ListedExecution {
  executionId: string;
  profile: string;
  state: "queued" | "running";
  session?: string;
  ageMs: number;
  elapsedMs: number;
  cpuMs: number;
}

export interface ServerStatus {
  uptimeMs?: number;
  running: number;
  queued: number;
  executionsTotal: number;
  executions?: ListedExecution[];
  sessions: SessionInfo[];
  pools: PoolStatus[];
}

export interface ExecutionStatus {
  executionId: string;
  state: "queued" | "running" | "finished";
  elapsedMs?: number;
  usage?: Usage;
  status?: ExecuteStatus;
}

export interface Position {
  line: number; // 0-based
  character: number; // 0-based
}

/** LSP's Diagnostic shape, as `analyze` returns it. */
export interface Diagnostic {
  range: { start: Position; end: Position };
  severity?: 1 | 2 | 3 | 4;
  code?: string | number;
  source?: string;
  message: string;
}

export interface AnalyzeResult {
  diagnostics: Diagnostic[];
  /** How the diagnostics were made: the server's `analyze`, or the `execute` fallback. */
  via: "analyze" | "execute";
}

// ---------------------------------------------------------------------------------------
// Client

export interface ClientOptions {
  /** The pycell binary (a path, or a name found on PATH). */
  binaryPath: string;
  /** Arguments before the framing options; default `["serve"]`. Add `--config FILE` here. */
  args?: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Everything the server writes to stderr (its log). */
  onStderr?: (text: string) => void;
  /** `window/logMessage` notifications (warnings the user should see). */
  onLogMessage?: (msg: LogMessage) => void;
  /** The server process ended (expectedly or not). */
  onExit?: (info: ExitInfo) => void;
  /** Give up on `initialize` after this long; default 30 s. */
  initializeTimeoutMs?: number;
}

export interface ExecuteOptions {
  /** Called for each `execute/output` notification of this execution (turns `stream` on). */
  onOutput?: (n: OutputNotification) => void;
  /** Called for each `execute/usage` notification of this execution (turns `stream` on). */
  onUsage?: (n: UsageNotification) => void;
  /** Aborting sends `$/cancelRequest`: the request then fails with -32800. */
  signal?: AbortSignal;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A protocol error, or the server could not be reached. */
export class PycellError extends Error {
  constructor(
    message: string,
    readonly code?: number,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = "PycellError";
  }
}

/** True when `err` is a JSON-RPC error response with that code. */
export function isRpcError(err: unknown, code: number): boolean {
  return (
    (err instanceof ResponseError || err instanceof PycellError) &&
    (err as { code?: number }).code === code
  );
}

/**
 * The code `analyze` runs inside the sandbox while the server has no `analyze` method.
 * SyntaxError counts columns in characters; VS Code (and LSP) in UTF-16 code units, where a
 * character beyond U+FFFF (an emoji) counts two: `u16` converts (1-based either way).
 */
export const ANALYZE_FALLBACK_CODE = [
  "import ast",
  "def u16(line, col):",
  "    lines = inputs['code'].splitlines()",
  "    if not isinstance(line, int) or not isinstance(col, int) or not 1 <= line <= len(lines):",
  "        return col",
  "    return len(lines[line - 1][:col - 1].encode('utf-16-le')) // 2 + 1",
  "try:",
  "    ast.parse(inputs['code'])",
  "    result = []",
  "except SyntaxError as e:",
  "    end_line = getattr(e, 'end_lineno', None)",
  "    result = [{'line': e.lineno, 'col': u16(e.lineno, e.offset), 'endLine': end_line,",
  "               'endCol': u16(end_line, getattr(e, 'end_offset', None)), 'message': e.msg}]",
  "except ValueError as e:",
  "    result = [{'line': 1, 'col': 1, 'endLine': None, 'endCol': None, 'message': str(e)}]",
  "",
].join("\n");

interface FallbackDiagnostic {
  line: number | null;
  col: number | null;
  endLine: number | null;
  endCol: number | null;
  message: string;
}

function toDiagnostic(d: FallbackDiagnostic): Diagnostic {
  const line = Math.max(0, (d.line ?? 1) - 1);
  const character = Math.max(0, (d.col ?? 1) - 1);
  let end: Position = { line, character: character + 1 };
  if (d.endLine != null && d.endCol != null && d.endLine >= 1) {
    const e = { line: d.endLine - 1, character: Math.max(0, d.endCol - 1) };
    if (e.line > line || (e.line === line && e.character > character)) end = e;
  }
  return { range: { start: { line, character }, end }, severity: 1, code: "syntax-error", source: "pycell", message: d.message };
}

export class PycellClient {
  private readonly outputListeners = new Map<string, ExecuteOptions>();
  private analyzeMethod: "unknown" | "yes" | "no" = "unknown";
  private exitInfo: ExitInfo | undefined;
  private disposing: Promise<ExitInfo> | undefined;
  private stderrTail = "";
  readonly exited: Promise<ExitInfo>;
  initializeResult!: InitializeResult;

  private constructor(
    private readonly child: ChildProcess,
    private readonly connection: MessageConnection,
    private readonly options: ClientOptions,
  ) {
    this.exited = new Promise<ExitInfo>((resolve) => {
      child.once("exit", (code, signal) => {
        const info: ExitInfo = { code, signal };
        // Let the reader take what the server wrote before it ended ('close' comes once
        // stdout is drained), then fail every request still waiting for an answer.
        const closed = new Promise<void>((r) => {
          if (child.stdout?.readableEnded || child.stdout?.destroyed) r();
          else child.once("close", () => r());
        });
        void Promise.race([closed, delay(1000)]).then(() => {
          this.exitInfo = info;
          connection.dispose();
          options.onExit?.(info);
          resolve(info);
        });
      });
    });
  }

  /** Spawns `pycell serve` and sends `initialize`. */
  static async start(options: ClientOptions): Promise<PycellClient> {
    const args = [...(options.args ?? ["serve"]), "--framing", "lsp"];
    const child = spawn(options.binaryPath, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ["pipe", "pipe", "pipe"],
    });
    const spawned = new Promise<void>((resolve, reject) => {
      child.once("spawn", () => resolve());
      child.once("error", (err: NodeJS.ErrnoException) => {
        reject(
          new PycellError(
            err.code === "ENOENT"
              ? `pycell binary not found: ${options.binaryPath} (set pycell.binaryPath)`
              : `cannot start ${options.binaryPath}: ${err.message}`,
          ),
        );
      });
    });
    // A write after the server died must not crash the host.
    child.stdin!.on("error", () => undefined);

    const connection = createMessageConnection(
      new StreamMessageReader(child.stdout!),
      new StreamMessageWriter(child.stdin!),
    );
    const client = new PycellClient(child, connection, options);
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (text: string) => {
      client.stderrTail = (client.stderrTail + text).slice(-4000);
      options.onStderr?.(text);
    });
    connection.onError(() => undefined);
    connection.onNotification("execute/output", (n: OutputNotification) => {
      client.outputListeners.get(n.executionId)?.onOutput?.(n);
    });
    connection.onNotification("execute/usage", (n: UsageNotification) => {
      client.outputListeners.get(n.executionId)?.onUsage?.(n);
    });
    connection.onNotification("window/logMessage", (m: LogMessage) => options.onLogMessage?.(m));
    connection.listen();

    try {
      await spawned;
      const init = connection.sendRequest<InitializeResult>("initialize", {
        processId: process.pid,
        clientInfo: { name: "pycell-vscode" },
        capabilities: {},
      });
      client.initializeResult = await client.guard(init, options.initializeTimeoutMs ?? 30000, "initialize");
    } catch (err) {
      client.child.kill("SIGKILL");
      throw err;
    }
    if (client.initializeResult.capabilities?.analyze === true) client.analyzeMethod = "yes";
    return client;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get isolation(): Isolation {
    return this.initializeResult.isolation;
  }

  get profiles(): ProfileInfo[] {
    return this.initializeResult.profiles;
  }

  /** The server process has ended. */
  get hasExited(): boolean {
    return this.exitInfo !== undefined;
  }

  get running(): boolean {
    return this.exitInfo === undefined && this.disposing === undefined;
  }

  /** The last few KiB the server wrote to stderr (for error messages). */
  get stderr(): string {
    return this.stderrTail;
  }

  /** Runs code. Output notifications reach `opts.onOutput` before the result resolves. */
  async execute(params: ExecuteParams, opts: ExecuteOptions = {}): Promise<ExecuteResult> {
    const streaming = opts.onOutput !== undefined || opts.onUsage !== undefined;
    const executionId = params.executionId ?? `vscode-${randomUUID()}`;
    const request: ExecuteParams = { ...params, executionId };
    if (streaming) request.stream = true;
    if (streaming) this.outputListeners.set(executionId, opts);
    const cts = new CancellationTokenSource();
    const onAbort = () => cts.cancel();
    opts.signal?.addEventListener("abort", onAbort);
    try {
      return await this.request<ExecuteResult>("execute", request, cts);
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
      this.outputListeners.delete(executionId);
      cts.dispose();
    }
  }

  /** Kills a running or queued execution; its `execute` still answers, with status killed. */
  kill(executionId: string): Promise<KillResult> {
    return this.request<KillResult>("kill", { executionId });
  }

  /** The server's state: running and queued counts, and each profile's zygote pool. */
  status(): Promise<ServerStatus> {
    return this.request<ServerStatus>("status");
  }

  /** A finished execution's result again, while the server keeps it (the last 256). */
  result(executionId: string): Promise<ExecuteResult> {
    return this.request<ExecuteResult>("result", { executionId });
  }

  /** Drops what the server remembers of a finished execution; true if it remembered it. */
  async forget(executionId: string): Promise<boolean> {
    return (await this.request<{ forgotten: boolean }>("forget", { executionId })).forgotten;
  }

  /** One execution's state. */
  executionStatus(executionId: string): Promise<ExecutionStatus> {
    return this.request<ExecutionStatus>("status", { executionId });
  }

  createSession(
    params: { session?: string; profile?: string; limits?: Limits; language?: Language } = {},
  ): Promise<{ session: string; profile: string; limits: Limits; pooled: boolean }> {
    return this.request("session/create", params);
  }

  closeSession(session: string): Promise<{ closed: boolean }> {
    return this.request<{ closed: boolean }>("session/close", { session });
  }

  /**
   * Diagnostics for `code`. Uses the server's `analyze` when it has one; otherwise (the
   * server answered -32601) parses the code with Python's `ast` inside a sandbox through
   * `execute`, which finds syntax errors only (of Python: the fallback has nothing for
   * JavaScript, which no server without `analyze` runs anyway).
   */
  async analyze(code: string, profile?: string, language?: Language): Promise<AnalyzeResult> {
    if (this.analyzeMethod !== "no") {
      try {
        const params = { code, ...(profile ? { profile } : {}), ...(language ? { language } : {}) };
        const r = await this.request<{ diagnostics: Diagnostic[] }>("analyze", params);
        this.analyzeMethod = "yes";
        return { diagnostics: r.diagnostics ?? [], via: "analyze" };
      } catch (err) {
        if (!isRpcError(err, RpcErrorCodes.MethodNotFound)) throw err;
        this.analyzeMethod = "no";
      }
    }
    if (language === "javascript") throw new PycellError("this pycell server cannot analyze JavaScript (it has no analyze method)");
    const r = await this.execute({ code: ANALYZE_FALLBACK_CODE, profile, inputs: { code } });
    if (r.status !== "ok" || !Array.isArray(r.value)) {
      const why = r.error ? `${r.error.type}: ${r.error.message}` : r.stderr.trim() || `status ${r.status}`;
      throw new PycellError(`analyze failed in the sandbox (${r.status}): ${why}`);
    }
    return { diagnostics: (r.value as FallbackDiagnostic[]).map(toDiagnostic), via: "execute" };
  }

  /** Sends `shutdown` then `exit`, and waits for the process. Idempotent. */
  dispose(timeoutMs = 5000): Promise<ExitInfo> {
    if (this.disposing) return this.disposing;
    this.disposing = (async () => {
      if (this.exitInfo) return this.exitInfo;
      try {
        // `shutdown` waits for the executions in flight.
        await this.guard(this.connection.sendRequest("shutdown"), timeoutMs, "shutdown");
        await this.connection.sendNotification("exit");
      } catch {
        // No answer: end of input kills every sandbox and ends the server.
        this.child.stdin?.end();
      }
      const done = await Promise.race([this.exited, delay(timeoutMs).then(() => undefined)]);
      if (!done) this.child.kill("SIGKILL");
      return this.exited;
    })();
    return this.disposing;
  }

  private async request<R>(method: string, params?: object, cts?: CancellationTokenSource): Promise<R> {
    if (this.exitInfo) throw new PycellError(`the pycell server has exited (${describeExit(this.exitInfo)})`);
    if (this.disposing) throw new PycellError("the pycell client is shutting down");
    try {
      // vscode-jsonrpc takes a trailing argument for a CancellationToken only when it is
      // one: an `undefined` there would turn the params into a positional array.
      const args: unknown[] = params === undefined ? [] : [params];
      if (cts) args.push(cts.token);
      return await this.connection.sendRequest<R>(method, ...args);
    } catch (err) {
      const lost =
        !(err instanceof ResponseError) ||
        err.code === ErrorCodes.PendingResponseRejected ||
        err.code === ErrorCodes.ConnectionInactive;
      if (lost && this.exitInfo) {
        throw new PycellError(`the pycell server exited during ${method} (${describeExit(this.exitInfo)})${this.stderrHint()}`);
      }
      throw err;
    }
  }

  private async guard<R>(p: Promise<R>, ms: number, what: string): Promise<R> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new PycellError(`no answer to ${what} after ${ms} ms${this.stderrHint()}`)), ms);
    });
    const died = this.exited.then((info) => {
      throw new PycellError(`the pycell server exited during ${what} (${describeExit(info)})${this.stderrHint()}`);
    });
    try {
      return await Promise.race([p, timeout, died]);
    } finally {
      clearTimeout(timer);
    }
  }

  private stderrHint(): string {
    const tail = this.stderrTail.trim().split("\n").slice(-3).join("\n");
    return tail ? `: ${tail}` : "";
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

export function describeExit(info: ExitInfo): string {
  return info.signal ? `signal ${info.signal}` : `exit code ${info.code}`;
}

/** A one-line summary of an execution's outcome, e.g. `ok in 12 ms` or `error: ValueError: x (line 3)`. */
export function summarize(r: ExecuteResult, lineOffset = 0): string {
  const ms = r.usage?.wallMs !== undefined ? ` in ${r.usage.wallMs} ms` : "";
  if (r.error) {
    const line = r.error.line != null ? ` (line ${r.error.line + lineOffset})` : "";
    return `${r.status}: ${r.error.type}: ${r.error.message}${line}${ms}`;
  }
  if (r.status === "ok") return `ok${ms}`;
  const extra = r.exitCode != null && r.exitCode !== 0 ? `, exit code ${r.exitCode}` : r.signal != null ? `, signal ${r.signal}` : "";
  return `${r.status}${extra}${ms}`;
}
