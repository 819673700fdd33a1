// A small stand-in for the `vscode` module: just the API surface extension.ts uses, recording
// what the extension shows (output, messages, diagnostics, the status bar, the webview) so
// that node's test runner can drive the extension against the real server without an
// editor. Not a general mock of VS Code.
"use strict";

class Position {
  constructor(line, character) {
    this.line = line;
    this.character = character;
  }
  translate(dl = 0, dc = 0) {
    return new Position(this.line + dl, this.character + dc);
  }
  isBefore(o) {
    return this.line < o.line || (this.line === o.line && this.character < o.character);
  }
  isEqual(o) {
    return this.line === o.line && this.character === o.character;
  }
}

class Range {
  constructor(a, b, c, d) {
    if (a instanceof Position) {
      this.start = a;
      this.end = b;
    } else {
      this.start = new Position(a, b);
      this.end = new Position(c, d);
    }
  }
  get isEmpty() {
    return this.start.isEqual(this.end);
  }
}

class Selection extends Range {
  constructor(anchor, active) {
    const [s, e] = active.isBefore(anchor) ? [active, anchor] : [anchor, active];
    super(s, e);
    this.anchor = anchor;
    this.active = active;
  }
}

class Diagnostic {
  constructor(range, message, severity) {
    this.range = range;
    this.message = message;
    this.severity = severity;
  }
}

class ThemeColor {
  constructor(id) {
    this.id = id;
  }
}

class EventEmitter {
  constructor() {
    this.listeners = [];
    this.event = (fn) => {
      this.listeners.push(fn);
      return { dispose: () => (this.listeners = this.listeners.filter((l) => l !== fn)) };
    };
  }
  fire(v) {
    for (const l of this.listeners) l(v);
  }
}

function createVscode(settings) {
  const record = {
    channels: new Map(),
    messages: [], // {kind, text}
    statusMessages: [],
    collections: new Map(),
    panels: [],
    commands: new Map(),
  };
  const saved = new EventEmitter();
  const closed = new EventEmitter();
  const configChanged = new EventEmitter();
  const activeEditorChanged = new EventEmitter();
  const windowState = new EventEmitter();
  let activeTextEditor;

  const window = {
    // Setting it (as a test's open() does) fires onDidChangeActiveTextEditor, as VS Code does.
    get activeTextEditor() {
      return activeTextEditor;
    },
    set activeTextEditor(editor) {
      activeTextEditor = editor;
      activeEditorChanged.fire(editor);
    },
    onDidChangeActiveTextEditor: activeEditorChanged.event,
    state: { focused: true },
    onDidChangeWindowState: windowState.event,
    createOutputChannel(name) {
      const ch = {
        name,
        text: "",
        append(t) {
          this.text += t;
        },
        appendLine(t) {
          this.text += t + "\n";
        },
        clear() {
          this.text = "";
        },
        show() {},
        hide() {},
        dispose() {},
      };
      record.channels.set(name, ch);
      return ch;
    },
    createStatusBarItem() {
      record.statusItem = { text: "", tooltip: "", visible: false, show() { this.visible = true; }, hide() { this.visible = false; }, dispose() {} };
      return record.statusItem;
    },
    setStatusBarMessage(text) {
      record.statusMessages.push(text);
      return { dispose() {} };
    },
    showErrorMessage: (text) => (record.messages.push({ kind: "error", text }), Promise.resolve(undefined)),
    showWarningMessage: (text) => (record.messages.push({ kind: "warning", text }), Promise.resolve(undefined)),
    showInformationMessage: (text) => (record.messages.push({ kind: "info", text }), Promise.resolve(undefined)),
    showQuickPick: (items) => Promise.resolve(Array.isArray(items) ? items[0] : undefined),
    createWebviewPanel(viewType, title, showOptions, options) {
      const disposed = new EventEmitter();
      const panel = {
        viewType,
        title,
        options,
        webview: { html: "" },
        revealed: 0,
        reveal() {
          this.revealed++;
        },
        onDidDispose: disposed.event,
        dispose() {
          disposed.fire();
        },
      };
      record.panels.push(panel);
      return panel;
    },
  };

  const vscode = {
    Position,
    Range,
    Selection,
    Diagnostic,
    ThemeColor,
    EventEmitter,
    StatusBarAlignment: { Left: 1, Right: 2 },
    ViewColumn: { Active: -1, Beside: -2, One: 1 },
    DiagnosticSeverity: { Error: 0, Warning: 1, Information: 2, Hint: 3 },
    window,
    languages: {
      createDiagnosticCollection(name) {
        const map = new Map();
        const c = {
          name,
          set: (uri, d) => map.set(uri.toString(), d),
          get: (uri) => map.get(uri.toString()),
          delete: (uri) => map.delete(uri.toString()),
          clear: () => map.clear(),
          dispose() {},
        };
        record.collections.set(name, c);
        return c;
      },
    },
    workspace: {
      workspaceFolders: undefined,
      getConfiguration(section) {
        return {
          get: (key, def) => (settings[key] !== undefined ? settings[key] : def),
          section,
        };
      },
      onDidSaveTextDocument: saved.event,
      onDidCloseTextDocument: closed.event,
      onDidChangeConfiguration: configChanged.event,
    },
    commands: {
      registerCommand(id, fn) {
        record.commands.set(id, fn);
        return { dispose: () => record.commands.delete(id) };
      },
      executeCommand(id, ...args) {
        const fn = record.commands.get(id);
        if (!fn) return Promise.reject(new Error(`no command ${id}`));
        return Promise.resolve(fn(...args));
      },
    },
  };
  // Focus or blur the window, as VS Code reports it.
  const setFocused = (focused) => {
    window.state = { focused };
    windowState.fire(window.state);
  };
  return { vscode, record, events: { saved, closed, configChanged, activeEditorChanged, setFocused } };
}

/** A text document over `text` at `fsPath`. */
function makeDocument(fsPath, text, languageId = "python") {
  const lines = () => doc._text.split("\n");
  const offsetAt = (p) => {
    const ls = lines();
    let o = 0;
    for (let i = 0; i < p.line && i < ls.length; i++) o += ls[i].length + 1;
    return o + p.character;
  };
  const doc = {
    _text: text,
    uri: { scheme: "file", fsPath, path: fsPath, toString: () => `file://${fsPath}` },
    languageId,
    version: 1,
    isClosed: false,
    isUntitled: false,
    get lineCount() {
      return lines().length;
    },
    setText(t) {
      this._text = t;
      this.version++;
    },
    getText(range) {
      if (!range) return this._text;
      return this._text.slice(offsetAt(range.start), offsetAt(range.end));
    },
    lineAt(n) {
      const t = lines()[n];
      return {
        lineNumber: n,
        text: t,
        range: new Range(n, 0, n, t.length),
        firstNonWhitespaceCharacterIndex: t.length - t.trimStart().length,
        isEmptyOrWhitespace: t.trim() === "",
      };
    },
    validateRange(r) {
      const ls = lines();
      const clamp = (p) => {
        const line = Math.min(Math.max(p.line, 0), ls.length - 1);
        return new Position(line, Math.min(Math.max(p.character, 0), ls[line].length));
      };
      return new Range(clamp(r.start), clamp(r.end));
    },
  };
  return doc;
}

function makeEditor(document, selection) {
  return { document, selection: selection ?? new Selection(new Position(0, 0), new Position(0, 0)) };
}

module.exports = { createVscode, makeDocument, makeEditor, Position, Range, Selection };
