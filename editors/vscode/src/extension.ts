// The pycell VS Code extension: runs Python and JavaScript files and selections in pycell's
// sandboxes.
// Everything protocol-related lives in client.ts (no `vscode` there); this file is the
// editor side: commands, the Output channel, the Problems panel, the figures webview and
// the status-bar item.

import * as os from "os";
import * as path from "path";
import * as vscode from "vscode";
import {
  Diagnostic as WireDiagnostic,
  ExecuteResult,
  Language,
  Limits,
  PycellClient,
  PycellError,
  ResponseError,
  RpcErrorCodes,
  ServerStatus,
  describeExit,
  isRpcError,
  profileLanguage,
  summarize,
} from "./client";
import { figuresHtml, figuresOf } from "./figures";

const SECTION = "pycell";

/**
 * The language pycell runs a document in, from its VS Code language id; undefined for any
 * other. Only these two ids: "javascriptreact" (JSX) and "typescript" are not JavaScript that
 * Node runs as it is, so they are refused rather than sent to fail in the sandbox.
 */
export function languageOfId(languageId: string): Language | undefined {
  return languageId === "python" || languageId === "javascript" ? languageId : undefined;
}

/**
 * `language` as a request carries it: only JavaScript is named. Python is what a request
 * without one runs, and a server older than JavaScript support refuses the unknown field,
 * so Python runs keep working there.
 */
function wireLanguage(language: Language): { language?: Language } {
  return language === "javascript" ? { language } : {};
}

/** The fields of `execute`'s limits, each its own setting `pycell.runLimits.<field>`. */
export const LIMIT_KEYS = ["timeoutMs", "cpuMs", "memoryMb", "maxOutputBytes", "maxProcesses", "diskMb"] as const;

interface Running {
  executionId: string;
  label: string;
  started: number;
}

let extension: PycellExtension | undefined;

export function activate(context: vscode.ExtensionContext): PycellExtension {
  extension = new PycellExtension(context);
  return extension;
}

export async function deactivate(): Promise<void> {
  await extension?.dispose();
  extension = undefined;
}

export class PycellExtension implements vscode.Disposable {
  readonly output = vscode.window.createOutputChannel("pycell");
  readonly serverLog = vscode.window.createOutputChannel("pycell server");
  readonly diagnostics = vscode.languages.createDiagnosticCollection("pycell");
  readonly statusItem = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 100);
  private client: PycellClient | undefined;
  private starting: Promise<PycellClient> | undefined;
  private startError: string | undefined;
  private lastStatus: ServerStatus | undefined;
  private figures: vscode.WebviewPanel | undefined;
  private readonly running = new Map<string, Running>();
  private readonly sessions = new Map<string, string>();
  private poll: NodeJS.Timeout | undefined;
  private itemVisible = false;
  private warnedLegacyLimits = false;
  private counter = 0;
  private disposed = false;

  /** How often the status bar's figures are refreshed while the item is on screen. */
  static pollIntervalMs = 5000;

  constructor(private readonly context: vscode.ExtensionContext) {
    const register = (id: string, fn: (...args: unknown[]) => unknown) =>
      context.subscriptions.push(vscode.commands.registerCommand(id, (...args: unknown[]) => this.guard(() => fn(...args))));
    register("pycell.runFile", () => this.runFile());
    register("pycell.runSelection", () => this.runSelection());
    register("pycell.runInSession", () => this.runInSession());
    register("pycell.kill", () => this.kill());
    register("pycell.analyze", () => this.analyzeActive());
    register("pycell.showStatus", () => this.showStatus());
    register("pycell.restartServer", () => this.restart());

    context.subscriptions.push(
      this.output,
      this.serverLog,
      this.diagnostics,
      this.statusItem,
      // Saving analyzes the file once the server runs; saving alone never starts it.
      vscode.workspace.onDidSaveTextDocument((doc) => {
        if (languageOfId(doc.languageId) && this.client?.running && config().get<boolean>("analyzeOnSave", true)) {
          void this.analyze(doc, false).catch((err) => this.output.appendLine(`pycell: analyze on save: ${message(err)}`));
        }
      }),
      vscode.workspace.onDidCloseTextDocument((doc) => this.diagnostics.delete(doc.uri)),
      vscode.window.onDidChangeActiveTextEditor(() => this.updateVisibility()),
      vscode.window.onDidChangeWindowState(() => this.updatePolling()),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration("pycell.binaryPath") || e.affectsConfiguration("pycell.configFile")) {
          if (this.client || this.starting) {
            void this.restart().catch((err) => this.showError(err));
          } else {
            // Not started yet: the next command starts the server with the new settings.
            this.startError = undefined;
            this.renderStatus();
          }
        } else if (e.affectsConfiguration("pycell")) {
          this.renderStatus();
        }
      }),
      this,
    );

    this.statusItem.command = "pycell.showStatus";
    this.statusItem.name = "pycell";
    this.renderStatus();
    // The server is not started here: opening a Python (or JavaScript) file costs nothing until a pycell
    // command (or a click on the status item) needs it.
    this.updateVisibility();
  }

  /** Whether `pycell serve` has been started (and not stopped) in this window. */
  get serverStarted(): boolean {
    return this.client !== undefined || this.starting !== undefined;
  }

  /** Whether the status bar's figures are being refreshed (only while it is on screen). */
  get polling(): boolean {
    return this.poll !== undefined;
  }

  /** The status item shows while a Python or JavaScript file is in front, or while something runs. */
  private updateVisibility(): void {
    const doc = vscode.window.activeTextEditor?.document;
    const show = !this.disposed && (this.running.size > 0 || (!!doc && languageOfId(doc.languageId) !== undefined));
    if (show !== this.itemVisible) {
      this.itemVisible = show;
      if (show) {
        this.statusItem.show();
        void this.refreshStatus();
      } else {
        this.statusItem.hide();
      }
    }
    this.updatePolling();
  }

  /** `status` is asked periodically only while the item is visible, the server runs and
   * the window has the focus; otherwise not at all. */
  private updatePolling(): void {
    const want = !this.disposed && this.itemVisible && !!this.client?.running && vscode.window.state?.focused !== false;
    if (want && !this.poll) {
      this.poll = setInterval(() => void this.refreshStatus(), PycellExtension.pollIntervalMs);
    } else if (!want && this.poll) {
      clearInterval(this.poll);
      this.poll = undefined;
    }
  }

  // --- the server ------------------------------------------------------------------------

  /** The running client, starting `pycell serve` when there is none. */
  getClient(): Promise<PycellClient> {
    if (this.client?.running) return Promise.resolve(this.client);
    if (this.starting) return this.starting;
    this.starting = this.startClient().finally(() => {
      this.starting = undefined;
      this.renderStatus();
      this.updatePolling();
    });
    this.renderStatus();
    return this.starting;
  }

  private async startClient(): Promise<PycellClient> {
    if (this.disposed) throw new PycellError("the pycell extension is shutting down");
    const cfg = config();
    const binaryPath = resolvePath(cfg.get<string>("binaryPath", "") || "pycell");
    const args = ["serve"];
    const configFile = cfg.get<string>("configFile", "");
    if (configFile) args.push("--config", resolvePath(configFile));
    const cwd = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    this.serverLog.appendLine(`starting ${binaryPath} ${args.join(" ")}`);
    let started: PycellClient | undefined;
    try {
      const client = await PycellClient.start({
        binaryPath,
        args,
        cwd,
        onStderr: (text) => this.serverLog.append(text),
        onLogMessage: (m) => {
          this.output.appendLine(`pycell: ${m.message}`);
          if (m.type === 1) void vscode.window.showErrorMessage(`pycell: ${m.message}`);
          else if (m.type === 2) void vscode.window.showWarningMessage(`pycell: ${m.message}`);
        },
        onExit: (info) => {
          if (started && this.client === started) {
            this.client = undefined;
            this.sessions.clear();
            this.running.clear();
            if (!this.disposed) {
              this.startError = `the server exited (${describeExit(info)}); it restarts on the next command`;
              this.output.appendLine(`pycell: ${this.startError}`);
            }
            this.renderStatus();
            this.updateVisibility();
          }
        },
      });
      started = client;
      if (client.hasExited) throw new PycellError(`the server exited right after starting${client.stderr ? `: ${client.stderr.trim()}` : ""}`);
      this.client = client;
      this.startError = undefined;
      const init = client.initializeResult;
      this.serverLog.appendLine(
        `pycell ${init.serverInfo.version ?? ""} (pid ${client.pid}), isolation ${client.isolation.level}, ` +
          `profiles ${client.profiles.map((p) => p.name).join(", ")}`,
      );
      if (client.isolation.level !== "isolated") {
        void vscode.window.showWarningMessage(
          `pycell: isolation is DEGRADED on this machine: code runs with weaker protection ` +
            `(${weakPoints(client).join(", ") || "see pycell check"}). Run \`pycell check\` in a terminal to see why and how to fix it.`,
          "Show details",
        ).then((pick) => pick && this.showStatus());
      }
      const profile = this.profile();
      if (!client.profiles.some((p) => p.name === profile)) {
        void vscode.window.showWarningMessage(
          `pycell: the profile "${profile}" (setting pycell.profile) is not one of this server's: ` +
            client.profiles.map((p) => p.name).join(", "),
        );
      }
      // Only a server that runs JavaScript at all has a JavaScript profile to miss.
      const jsProfile = this.profile("javascript");
      const jsProfiles = client.profiles.filter((p) => profileLanguage(p) === "javascript");
      if (jsProfiles.length && !jsProfiles.some((p) => p.name === jsProfile)) {
        void vscode.window.showWarningMessage(
          `pycell: the profile "${jsProfile}" (setting pycell.javascriptProfile) is not one of this server's JavaScript profiles: ` +
            jsProfiles.map((p) => p.name).join(", "),
        );
      }
      await this.refreshStatus();
      return client;
    } catch (err) {
      this.startError = message(err);
      this.renderStatus();
      throw err;
    }
  }

  async restart(): Promise<void> {
    const old = this.client;
    this.client = undefined;
    this.lastStatus = undefined;
    this.sessions.clear();
    this.running.clear();
    if (old) await old.dispose(3000);
    await this.getClient();
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.updatePolling();
    const client = this.client;
    this.client = undefined;
    if (client) {
      for (const id of this.running.keys()) await client.kill(id).catch(() => undefined);
      for (const s of this.sessions.values()) await client.closeSession(s).catch(() => undefined);
      await client.dispose(3000);
    }
    this.figures?.dispose();
  }

  // --- running code ----------------------------------------------------------------------

  /** The profile runs in `language` use: pycell.profile (Python) or pycell.javascriptProfile. */
  profile(language: Language = "python"): string {
    if (language === "javascript") return config().get<string>("javascriptProfile", "javascript") || "javascript";
    return config().get<string>("profile", "default") || "default";
  }

  /**
   * Refuses, with a message that says why, a run the server would refuse: a profile that
   * serves another language, or JavaScript on a server none of whose profiles runs it (an
   * older pycell). A profile the server does not list is left to the server to refuse.
   */
  private checkProfile(client: PycellClient, language: Language, profile: string): void {
    const listed = client.profiles.find((p) => p.name === profile);
    const setting = language === "javascript" ? "pycell.javascriptProfile" : "pycell.profile";
    if (language === "javascript" && !client.profiles.some((p) => profileLanguage(p) === "javascript")) {
      throw new PycellError(
        `this pycell server (${client.initializeResult.serverInfo.version ?? "?"}) runs no JavaScript: none of its profiles serves it`,
      );
    }
    if (listed && profileLanguage(listed) !== language) {
      throw new PycellError(
        `the profile "${profile}" (setting ${setting}) runs ${profileLanguage(listed)}, not ${language}; ` +
          `profiles for ${language}: ${client.profiles.filter((p) => profileLanguage(p) === language).map((p) => p.name).join(", ") || "none"}`,
      );
    }
  }

  /**
   * The limits sent with each run: `pycell.runLimits.<field>` where it is set (above 0),
   * else that field of the deprecated `pycell.limits` object, else nothing (the profile's).
   */
  limits(): Limits | undefined {
    const cfg = config();
    const legacy = cfg.get<Record<string, unknown>>("limits", {}) ?? {};
    const limits: Record<string, number> = {};
    let usedLegacy = false;
    for (const key of LIMIT_KEYS) {
      const v = cfg.get<number>(`runLimits.${key}`, 0);
      const old = legacy[key];
      if (typeof v === "number" && v > 0) limits[key] = v;
      else if (typeof old === "number" && old > 0) {
        limits[key] = old;
        usedLegacy = true;
      }
    }
    if (usedLegacy && !this.warnedLegacyLimits) {
      this.warnedLegacyLimits = true;
      this.output.appendLine(
        `pycell: the setting pycell.limits is deprecated; its values are still used where ` +
          `pycell.runLimits.* is not set. Move them to ${LIMIT_KEYS.map((k) => `pycell.runLimits.${k}`).join(", ")}.`,
      );
    }
    return Object.keys(limits).length ? (limits as Limits) : undefined;
  }

  private editor(): vscode.TextEditor {
    const editor = vscode.window.activeTextEditor;
    if (!editor) throw new PycellError("open a Python or JavaScript file first");
    return editor;
  }

  /** The document's language, or an error that names what pycell runs. */
  private languageOf(doc: vscode.TextDocument): Language {
    const language = languageOfId(doc.languageId);
    if (!language) {
      throw new PycellError(`pycell runs Python and JavaScript files; ${label(doc)} is ${doc.languageId}`);
    }
    return language;
  }

  async runFile(): Promise<ExecuteResult> {
    const editor = this.editor();
    const doc = editor.document;
    return this.run(doc.getText(), label(doc), doc, 0, undefined, this.languageOf(doc));
  }

  async runSelection(): Promise<ExecuteResult> {
    const editor = this.editor();
    const language = this.languageOf(editor.document);
    const { code, firstLine, what } = selectionCode(editor);
    return this.run(code, `${label(editor.document)} ${what}`, editor.document, firstLine, undefined, language);
  }

  async runInSession(): Promise<ExecuteResult | undefined> {
    const editor = this.editor();
    const doc = editor.document;
    const language = this.languageOf(doc);
    const sel = editor.selection;
    const { code, firstLine, what } = sel.isEmpty ? { code: doc.getText(), firstLine: 0, what: "" } : selectionCode(editor);
    const client = await this.getClient();
    const profile = this.profile(language);
    this.checkProfile(client, language, profile);
    // A document whose language changed gets a session of its new language.
    const key = `${language}:${doc.uri.toString()}`;
    for (let attempt = 0; ; attempt++) {
      let session = this.sessions.get(key);
      if (!session) {
        try {
          session = (await client.createSession({ profile, limits: this.limits(), ...wireLanguage(language) })).session;
        } catch (err) {
          const unsupported = !client.initializeResult.capabilities.sessions && isRpcError(err, RpcErrorCodes.MethodNotFound);
          const version = client.initializeResult.serverInfo.version ?? "";
          const text = unsupported
            ? `Run in Session is not available: this pycell server (${version}) does not support sessions. ` +
              `Run File and Run Selection work, each in a fresh sandbox.`
            : `the session could not be started (${(err as ResponseError).code}: ${(err as Error).message})`;
          this.output.appendLine(`pycell: ${text}`);
          void vscode.window.showErrorMessage(`pycell: ${text}`);
          return undefined;
        }
        this.sessions.set(key, session);
      }
      try {
        const result = await this.run(code, [label(doc), what, "(session)"].filter(Boolean).join(" "), doc, firstLine, session, language);
        if (result.session && !result.session.alive) {
          // Killed, crashed or out of memory: the next run starts a new session.
          this.sessions.delete(key);
          this.output.appendLine(`pycell: session ${session} ended with this run; its state is gone. The next run starts a new one.`);
        }
        return result;
      } catch (err) {
        // The session expired (idle) or its sandbox died: say so, and start a new one once.
        if (attempt === 0 && isRpcError(err, RpcErrorCodes.InvalidParams) && /session/i.test((err as Error).message)) {
          this.sessions.delete(key);
          void vscode.window.showWarningMessage(
            `pycell: the session for ${label(doc)} is gone (${(err as Error).message}); a new one starts, earlier state is lost.`,
          );
          continue;
        }
        throw err;
      }
    }
  }

  /** Runs code, streaming its output into the Output channel. */
  async run(
    code: string,
    what: string,
    doc: vscode.TextDocument,
    lineOffset: number,
    session?: string,
    language: Language = "python",
  ): Promise<ExecuteResult> {
    const client = await this.getClient();
    const profile = this.profile(language);
    this.checkProfile(client, language, profile);
    const executionId = `vscode-${process.pid}-${++this.counter}`;
    const out = this.output;
    out.show(true);
    out.appendLine(`▶ ${what} · profile ${profile}${session ? ` · session ${session}` : ""} · ${executionId}`);
    this.running.set(executionId, { executionId, label: what, started: Date.now() });
    this.renderStatus();
    this.updateVisibility();
    let lastChar = "\n";
    try {
      const r = await client.execute(
        { code, profile, ...wireLanguage(language), limits: this.limits(), executionId, session },
        {
          onOutput: (n) => {
            if (!n.text) return;
            out.append(n.text);
            lastChar = n.text[n.text.length - 1];
          },
        },
      );
      if (lastChar !== "\n") out.appendLine("");
      this.report(r, what, doc, lineOffset);
      return r;
    } catch (err) {
      if (lastChar !== "\n") out.appendLine("");
      if (isRpcError(err, RpcErrorCodes.RequestCancelled)) out.appendLine(`■ ${what}: cancelled`);
      throw err;
    } finally {
      this.running.delete(executionId);
      this.renderStatus();
      this.updateVisibility();
      if (this.itemVisible) void this.refreshStatus();
    }
  }

  private report(r: ExecuteResult, what: string, doc: vscode.TextDocument, lineOffset: number): void {
    const out = this.output;
    if (r.truncated?.stdout || r.truncated?.stderr) {
      out.appendLine(`(output truncated: the profile's maxOutputBytes kept the head and the tail)`);
    }
    // Like Python's REPL, a None value (a print() call at the end) is not shown; JavaScript's
    // undefined comes as no valueRepr at all.
    if (r.valueRepr != null && r.valueRepr !== "None") out.appendLine(`= ${r.valueRepr}`);
    const summary = summarize(r, lineOffset);
    out.appendLine(`■ ${summary}`);
    if (r.error?.line != null && doc.uri.scheme === "file") {
      // `path:line` is a link in the Output panel.
      out.appendLine(`  at ${doc.uri.fsPath}:${r.error.line + lineOffset}`);
    }
    const figures = figuresOf(r.displays);
    if (figures.length) {
      out.appendLine(`  ${figures.length} figure(s) shown in the "pycell figures" panel`);
      this.showFigures(`${what}: ${figures.length} figure(s)`, r.displays);
    }
    vscode.window.setStatusBarMessage(`pycell: ${summary}`, 5000);
    if (r.status !== "ok" && r.status !== "error" && r.status !== "killed") {
      void vscode.window.showWarningMessage(`pycell: ${what}: ${summary}`);
    }
  }

  showFigures(title: string, displays: ExecuteResult["displays"]): void {
    const figures = figuresOf(displays);
    if (!figures.length) return;
    if (!this.figures) {
      this.figures = vscode.window.createWebviewPanel(
        "pycell.figures",
        "pycell figures",
        { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true },
        { enableScripts: false, localResourceRoots: [] },
      );
      this.figures.onDidDispose(() => (this.figures = undefined));
    }
    this.figures.title = "pycell figures";
    this.figures.webview.html = figuresHtml(title, figures);
    this.figures.reveal(vscode.ViewColumn.Beside, true);
  }

  async kill(): Promise<void> {
    const client = this.client;
    const runs = [...this.running.values()];
    if (!client || runs.length === 0) {
      void vscode.window.showInformationMessage("pycell: nothing is running.");
      return;
    }
    let target: Running | undefined = runs[0];
    if (runs.length > 1) {
      const pick = await vscode.window.showQuickPick(
        runs.map((r) => ({ label: r.label, description: `${Math.round((Date.now() - r.started) / 1000)} s · ${r.executionId}`, run: r })),
        { placeHolder: "Kill which run?" },
      );
      target = pick?.run;
    }
    if (!target) return;
    const r = await client.kill(target.executionId);
    if (!r.killed) void vscode.window.showInformationMessage(`pycell: ${target.label} was not killed (it is ${r.state}).`);
  }

  // --- diagnostics -----------------------------------------------------------------------

  private async analyzeActive(): Promise<void> {
    const doc = this.editor().document;
    if (!languageOfId(doc.languageId)) {
      void vscode.window.showInformationMessage(`pycell: Analyze works on Python and JavaScript files; ${label(doc)} is ${doc.languageId}.`);
      return;
    }
    const n = await this.analyze(doc, true);
    vscode.window.setStatusBarMessage(`pycell: ${n === 0 ? "no problems" : `${n} problem(s)`} in ${label(doc)}`, 5000);
  }

  /** Puts the document's diagnostics into the Problems panel; returns how many. */
  async analyze(doc: vscode.TextDocument, explicit: boolean): Promise<number> {
    const client = await this.getClient();
    const language = this.languageOf(doc);
    const profile = this.profile(language);
    this.checkProfile(client, language, profile);
    const version = doc.version;
    const { diagnostics, via } = await client.analyze(doc.getText(), profile, wireLanguage(language).language);
    if (doc.isClosed || (doc.version !== version && !explicit)) return diagnostics.length;
    this.diagnostics.set(doc.uri, diagnostics.map((d) => toVsDiagnostic(doc, d)));
    if (explicit) this.output.appendLine(`pycell: analyzed ${label(doc)} (${via}): ${diagnostics.length} problem(s)`);
    return diagnostics.length;
  }

  // --- status ----------------------------------------------------------------------------

  private async refreshStatus(): Promise<void> {
    const client = this.client;
    if (!client?.running) return;
    try {
      this.lastStatus = await client.status();
    } catch {
      this.lastStatus = undefined;
    }
    this.renderStatus();
  }

  renderStatus(): void {
    const item = this.statusItem;
    const client = this.client;
    if (!client) {
      if (this.starting) {
        item.text = "$(sync~spin) pycell";
        item.tooltip = "pycell: starting the server";
        item.backgroundColor = undefined;
      } else if (this.startError) {
        item.text = "$(error) pycell: stopped";
        item.tooltip = `pycell: ${this.startError}\nClick for details.`;
        item.backgroundColor = new vscode.ThemeColor("statusBarItem.errorBackground");
      } else {
        item.text = "$(shield) pycell";
        item.tooltip = "pycell: the server starts with the first pycell command (Run File, Run Selection, Analyze, ...).\nClick to start it and show its status.";
        item.backgroundColor = undefined;
      }
      return;
    }
    const degraded = client.isolation.level !== "isolated";
    const front = vscode.window.activeTextEditor?.document;
    const profile = this.profile((front && languageOfId(front.languageId)) || "python");
    const pool = this.lastStatus?.pools.find((p) => p.profile === profile);
    const poolText = pool ? `${profile} ${pool.ready}/${pool.target}` : profile;
    const busy = this.running.size ? ` · running ${this.running.size}` : "";
    const icon = this.running.size ? "$(sync~spin)" : degraded ? "$(warning)" : "$(shield)";
    item.text = `${icon} pycell: ${degraded ? "DEGRADED" : "isolated"} · ${poolText}${busy}`;
    item.backgroundColor = degraded ? new vscode.ThemeColor("statusBarItem.warningBackground") : undefined;
    const lines = [
      `pycell ${client.initializeResult.serverInfo.version ?? ""}: isolation ${client.isolation.level}` +
        (degraded ? ` (weaker: ${weakPoints(client).join(", ")})` : ""),
      ...(this.lastStatus?.pools ?? []).map(
        (p) => `pool ${p.profile}: ${p.ready} ready of ${p.target}${p.zygoteReady === false ? ", zygote starting" : ""}`,
      ),
      this.lastStatus ? `running ${this.lastStatus.running}, queued ${this.lastStatus.queued}, total ${this.lastStatus.executionsTotal}` : "",
      "Click for details.",
    ];
    item.tooltip = lines.filter(Boolean).join("\n");
  }

  async showStatus(): Promise<void> {
    const out = this.output;
    out.show(true);
    let client: PycellClient;
    try {
      client = await this.getClient();
    } catch (err) {
      out.appendLine(`pycell: the server is not running: ${message(err)}`);
      return;
    }
    await this.refreshStatus();
    const init = client.initializeResult;
    out.appendLine(`pycell ${init.serverInfo.version ?? ""} (pid ${client.pid})`);
    out.appendLine(`  isolation: ${client.isolation.level}`);
    for (const [k, v] of Object.entries(client.isolation)) if (k !== "level") out.appendLine(`    ${k}: ${JSON.stringify(v)}`);
    out.appendLine(`  profiles:`);
    for (const p of client.profiles) {
      const language = profileLanguage(p);
      const selected = p.name === this.profile(language) ? ` (selected for ${language})` : ` (${language})`;
      out.appendLine(`    ${p.name}${selected}: ${p.description ?? ""}`);
    }
    const s = this.lastStatus;
    if (s) {
      out.appendLine(`  running ${s.running}, queued ${s.queued}, executions so far ${s.executionsTotal}`);
      for (const p of s.pools) {
        out.appendLine(
          `  pool ${p.profile}: ${p.ready}/${p.target} ready` +
            (p.starting ? `, ${p.starting} starting` : "") +
            (p.zygoteReady === false ? ", zygote not ready yet" : "") +
            (p.forksServed !== undefined ? `, ${p.forksServed} served` : ""),
        );
      }
    }
  }

  // --- errors ----------------------------------------------------------------------------

  private async guard(fn: () => unknown): Promise<unknown> {
    try {
      return await fn();
    } catch (err) {
      this.showError(err);
      return undefined;
    }
  }

  private showError(err: unknown): void {
    if (isRpcError(err, RpcErrorCodes.RequestCancelled)) return;
    const text = err instanceof ResponseError ? `${err.message} (error ${err.code})` : message(err);
    this.output.appendLine(`pycell: ${text}`);
    void vscode.window.showErrorMessage(`pycell: ${text}`);
  }
}

// --- helpers ---------------------------------------------------------------------------

function config(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration(SECTION);
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function label(doc: vscode.TextDocument): string {
  return doc.isUntitled ? doc.uri.path : path.basename(doc.uri.fsPath || doc.uri.path);
}

/** `~` and `${workspaceFolder}` expanded; a relative path is taken from the first workspace folder. */
function resolvePath(p: string): string {
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  let out = p.replace(/^~(?=$|\/)/, os.homedir());
  if (folder) out = out.replace(/\$\{workspaceFolder\}/g, folder);
  if (folder && !path.isAbsolute(out) && out.includes("/")) out = path.join(folder, out);
  return out;
}

function weakPoints(client: PycellClient): string[] {
  const iso = client.isolation;
  const weak = Object.entries(iso)
    .filter(([, v]) => v === false)
    .map(([k]) => `no ${k}`);
  if (iso.cgroup === "none") weak.push("no cgroup");
  return weak;
}

/**
 * The selection's code (the current line when nothing is selected), with its common
 * indentation removed so that a block from inside a function runs on its own.
 */
function selectionCode(editor: vscode.TextEditor): { code: string; firstLine: number; what: string } {
  const doc = editor.document;
  const sel = editor.selection;
  let range: vscode.Range;
  if (sel.isEmpty) {
    range = doc.lineAt(sel.active.line).range;
  } else {
    // Take whole lines when the selection starts in a line's indentation.
    const startLine = doc.lineAt(sel.start.line);
    const start = sel.start.character <= startLine.firstNonWhitespaceCharacterIndex ? startLine.range.start : sel.start;
    range = new vscode.Range(start, sel.end);
  }
  const code = dedent(doc.getText(range));
  const first = range.start.line + 1;
  const last = range.end.line + (range.end.character === 0 && range.end.line > range.start.line ? 0 : 1);
  return { code, firstLine: range.start.line, what: first === last ? `line ${first}` : `lines ${first}-${last}` };
}

export function dedent(text: string): string {
  const lines = text.split("\n");
  let indent: string | undefined;
  for (const line of lines) {
    if (!line.trim()) continue;
    const lead = /^[ \t]*/.exec(line)![0];
    if (indent === undefined) {
      indent = lead;
      continue;
    }
    let i = 0;
    while (i < indent.length && i < lead.length && indent[i] === lead[i]) i++;
    indent = indent.slice(0, i);
  }
  if (!indent) return text;
  return lines.map((l) => (l.startsWith(indent!) ? l.slice(indent!.length) : l.trim() ? l : "")).join("\n");
}

function toVsDiagnostic(doc: vscode.TextDocument, d: WireDiagnostic): vscode.Diagnostic {
  const s = d.range.start;
  const e = d.range.end ?? s;
  let range = doc.validateRange(new vscode.Range(s.line, s.character, e.line, e.character));
  if (range.isEmpty) {
    // Past the end of a line (an unexpected EOF): mark the line's last character, or the line.
    const line = doc.lineAt(Math.min(range.start.line, doc.lineCount - 1));
    range = line.range.isEmpty
      ? line.range
      : new vscode.Range(line.range.end.translate(0, -1), line.range.end);
  }
  const severity = [
    vscode.DiagnosticSeverity.Error,
    vscode.DiagnosticSeverity.Error,
    vscode.DiagnosticSeverity.Warning,
    vscode.DiagnosticSeverity.Information,
    vscode.DiagnosticSeverity.Hint,
  ][d.severity ?? 1];
  const out = new vscode.Diagnostic(range, d.message, severity);
  out.source = d.source ?? "pycell";
  if (d.code !== undefined) out.code = d.code;
  return out;
}
