-- pycell: run Python and JavaScript from Neovim buffers in pycell's sandboxes.
-- This module is the UI (commands, output split, diagnostics); the protocol client is
-- pycell.rpc. One server per Neovim, started on first use, stopped on VimLeavePre.
local api = vim.api
local config = require('pycell.config')
local rpc = require('pycell.rpc')
local output = require('pycell.output')
local diag = require('pycell.diagnostics')

local M = {}

M.version = '0.1.0'

M.namespaces = {
  run = api.nvim_create_namespace('pycell.run'), -- the error of the last run
  analyze = api.nvim_create_namespace('pycell.analyze'), -- :PycellAnalyze
}

-- Everything mutable, exposed for statuslines and tests.
local S = {
  client = nil, -- the pycell.rpc client (one per Neovim)
  seq = 0,
  current = nil, -- the run shown in the output buffer
  last = nil, -- the last finished run
  analyze_method = nil, -- nil unknown, true the server has `analyze`, false it has not
}
M._state = S

local levels = vim.log.levels

local function notify(msg, level)
  vim.notify('pycell: ' .. msg, level or levels.INFO)
end

local function cfg()
  return config.get()
end

local function is_nil(v)
  return v == nil or v == vim.NIL
end

local function binary()
  local b = cfg().binary
  if b:sub(1, 1) == '~' then
    b = vim.fn.expand(b)
  end
  return b
end

-- `execute/output` for the run on screen goes into the output buffer.
local function on_output(p)
  local run = S.current
  if type(p) ~= 'table' or not run or run.done or p.executionId ~= run.id then
    return
  end
  run.streamed = true
  run.chunks = (run.chunks or 0) + 1
  output.append(p.text, p.stream)
end

local log_levels = { [1] = levels.ERROR, [2] = levels.WARN, [3] = levels.INFO, [4] = levels.DEBUG }

--- The protocol client, created (not started) on first use.
function M.client()
  if S.client then
    return S.client
  end
  local args = { 'serve', '--framing', 'lsp', '--client-process-id', tostring(vim.fn.getpid()) }
  vim.list_extend(args, cfg().args or {})
  local c = rpc.new({
    cmd = binary(),
    args = args,
    client_info = { name = 'pycell.nvim', version = M.version },
    on_ready = function(server)
      S.analyze_method = nil
      local iso = type(server.isolation) == 'table' and server.isolation or {}
      if iso.level == 'degraded' then
        notify('isolation is degraded on this machine; run `pycell check` to see what is missing', levels.WARN)
      end
    end,
    on_exit = function(code, signal, expected)
      if not expected then
        notify(string.format('the server exited unexpectedly (code %s, signal %s); the next command restarts it', tostring(code), tostring(signal)), levels.WARN)
      end
    end,
    on_error = function(message)
      notify('protocol error: ' .. message, levels.WARN)
    end,
  })
  c:on('execute/output', on_output)
  c:on('execute/usage', function() end)
  c:on('window/logMessage', function(p)
    if type(p) == 'table' and p.message then
      notify(tostring(p.message), log_levels[p.type] or levels.INFO)
    end
  end)
  S.client = c
  return c
end

--- Apply settings (see pycell.config for every key and its default).
function M.setup(opts)
  local old = cfg()
  local new = config.set(opts)
  -- A running server keeps its binary and arguments; a different one is used from the next start.
  if S.client and (old.binary ~= new.binary or not vim.deep_equal(old.args, new.args)) then
    if S.client:is_alive() then
      S.client:stop(new.shutdown_timeout_ms)
    end
    S.client = nil
  end
  local group = api.nvim_create_augroup('pycell_analyze_on_save', { clear = true })
  if new.analyze_on_save then
    api.nvim_create_autocmd('BufWritePost', {
      group = group,
      pattern = { '*.py', '*.js' },
      desc = 'pycell: analyze on save',
      callback = function(ev)
        M.analyze({ bufnr = ev.buf, quiet = true })
      end,
    })
  end
  return new
end

-- The code to send, and where it sits in the buffer. A range that is indented as a whole
-- (a method body, say) is dedented so that it runs.
local function source(bufnr, line1, line2)
  if bufnr == 0 or bufnr == nil then
    bufnr = api.nvim_get_current_buf()
  end
  local n = api.nvim_buf_line_count(bufnr)
  line1 = math.max(line1 or 1, 1)
  line2 = math.min(line2 or n, n)
  local lines = api.nvim_buf_get_lines(bufnr, line1 - 1, line2, false)
  local prefix = ''
  if line1 ~= 1 or line2 ~= n then
    for _, l in ipairs(lines) do
      if l:find('%S') then
        local lead = l:match('^[ \t]*')
        if prefix == '' or #lead < #prefix then
          prefix = lead
        end
        if lead == '' then
          prefix = ''
          break
        end
      end
    end
  end
  -- The bytes taken off each line, so that columns the server reports map back.
  local stripped = {}
  for i, l in ipairs(lines) do
    if prefix ~= '' then
      lines[i] = l:sub(1, #prefix) == prefix and l:sub(#prefix + 1) or l:gsub('^%s+', '')
    end
    stripped[i] = #l - #lines[i]
  end
  local name = api.nvim_buf_get_name(bufnr)
  return {
    bufnr = bufnr,
    code = table.concat(lines, '\n') .. '\n',
    offset = line1 - 1,
    indent = #prefix,
    stripped = stripped,
    lines = lines,
    line1 = line1,
    line2 = line2,
    line_count = n,
    whole = line1 == 1 and line2 == n,
    name = name ~= '' and vim.fn.fnamemodify(name, ':t') or '[No Name]',
  }
end

-- The language pycell runs a buffer in, from its filetype: `javascript` is JavaScript,
-- `python` and no filetype (a scratch buffer) are Python. Any other is refused (nil and
-- why): typescript or javascriptreact would only fail in Node, and a Lua buffer in Python.
function M.language_of(bufnr)
  local ft = api.nvim_buf_get_option(bufnr, 'filetype')
  if ft == 'javascript' then
    return 'javascript'
  end
  if ft == 'python' or ft == '' then
    return 'python'
  end
  return nil, string.format('pycell runs Python and JavaScript buffers; this one is %s', ft)
end

-- The profile for a run in `language` when none is named.
local function profile_for(language)
  if language == 'javascript' then
    return cfg().javascript_profile or 'javascript'
  end
  return cfg().profile
end

-- Only JavaScript is named in a request: Python is what one without `language` runs, and a
-- server older than JavaScript support refuses the unknown field.
local function with_language(params, language)
  if language == 'javascript' then
    params.language = language
  end
  return params
end

local function with_limits(params)
  local limits = cfg().limits
  if type(limits) == 'table' and next(limits) ~= nil then
    params.limits = limits
  end
  return params
end

local function fmt_bytes(b)
  if type(b) ~= 'number' then
    return nil
  end
  if b >= 1048576 then
    return string.format('%.1f MiB', b / 1048576)
  end
  return string.format('%.0f KiB', b / 1024)
end

-- The lines that end a run in the output buffer.
local function summary(run, result)
  local head = { '[pycell] ' .. tostring(result.status) }
  if not is_nil(result.exitCode) then
    table.insert(head, 'exit ' .. tostring(result.exitCode))
  end
  if not is_nil(result.signal) then
    table.insert(head, 'signal ' .. tostring(result.signal))
  end
  local u = type(result.usage) == 'table' and result.usage or {}
  if type(u.wallMs) == 'number' then
    table.insert(head, string.format('%d ms', u.wallMs))
  end
  if type(u.cpuUserMs) == 'number' then
    table.insert(head, string.format('cpu %d ms', u.cpuUserMs + (tonumber(u.cpuSysMs) or 0)))
  end
  if fmt_bytes(u.peakMemoryBytes) then
    table.insert(head, 'peak ' .. fmt_bytes(u.peakMemoryBytes))
  end
  local lines = { table.concat(head, ' | ') }
  local t = type(result.truncated) == 'table' and result.truncated or {}
  if t.stdout == true or t.stderr == true then
    table.insert(lines, '(output truncated by the maxOutputBytes limit)')
  end
  -- Like the REPL, say nothing about a None value (the code ended with print(...), say);
  -- JavaScript's undefined comes as no valueRepr at all.
  if not is_nil(result.valueRepr) and not (result.valueRepr == 'None' and is_nil(result.value)) then
    for i, l in ipairs(vim.split(tostring(result.valueRepr), '\n', { plain = true })) do
      table.insert(lines, (i == 1 and 'value: ' or '       ') .. l)
    end
  elseif not is_nil(result.value) then
    table.insert(lines, 'value: ' .. vim.json.encode(result.value))
  end
  local e = result.error
  if type(e) == 'table' then
    local where = ''
    if type(e.line) == 'number' then
      local bufline = run.offset + e.line
      where = run.whole and string.format(' (line %d)', bufline)
        or string.format(' (line %d; line %d of the range)', bufline, e.line)
    end
    local etype = is_nil(e.type) and 'Error' or tostring(e.type)
    table.insert(lines, string.format('error: %s: %s%s', etype, is_nil(e.message) and '' or tostring(e.message), where))
  end
  if type(result.displays) == 'table' and #result.displays > 0 then
    table.insert(lines, string.format('(%d figure(s) or rich display(s) not shown in Neovim)', #result.displays))
  end
  return lines, type(e) == 'table' and 'ErrorMsg' or 'Comment'
end

local function finish(run, e, result)
  run.done = true
  run.err, run.result = e, result
  run.status = (not e and type(result) == 'table') and result.status or 'failed'
  S.last = run
  if S.current == run then
    if e then
      output.lines({ '[pycell] request failed: ' .. tostring(e.message) }, 'ErrorMsg')
      notify(tostring(e.message), levels.ERROR)
    else
      if not run.stream then
        output.append(result.stdout or '', 'stdout')
        output.append(result.stderr or '', 'stderr')
      end
      local lines, group = summary(run, result)
      output.lines(lines, group)
      local d = diag.from_execute_error(result.error, run.src)
      if d and api.nvim_buf_is_valid(run.bufnr) then
        vim.diagnostic.set(M.namespaces.run, run.bufnr, { d }, {})
      end
    end
  end
  if run.on_done then
    run.on_done(run)
  end
end

--- Run code. opts: bufnr (default current), line1/line2 (default the whole buffer),
--- profile, language ('python' or 'javascript'; default from the filetype), force (kill a
--- run still in progress), on_done(run).
--- Returns the run record {id, status, result, ...} or nil.
function M.run(opts)
  opts = opts or {}
  local bufnr = opts.bufnr or api.nvim_get_current_buf()
  if bufnr == 0 then
    bufnr = api.nvim_get_current_buf()
  end
  if output.is_output(bufnr) then
    notify('run this from a Python or JavaScript buffer, not from the output buffer', levels.WARN)
    return nil
  end
  local language, why = opts.language, nil
  if not language then
    language, why = M.language_of(bufnr)
  end
  if not language then
    notify(why, levels.ERROR)
    return nil
  end
  if S.current and not S.current.done then
    if not opts.force then
      notify(string.format('%s is still running: :PycellKill it, or :PycellRun! to kill it and run', S.current.id), levels.WARN)
      return nil
    end
    M.kill()
  end
  local src = source(bufnr, opts.line1, opts.line2)
  local c = cfg()
  S.seq = S.seq + 1
  local run = {
    id = string.format('nvim-%d-%d', vim.fn.getpid(), S.seq),
    bufnr = src.bufnr,
    offset = src.offset,
    whole = src.whole,
    src = src,
    profile = opts.profile or profile_for(language),
    language = language,
    stream = c.stream,
    started = vim.loop.hrtime(),
    done = false,
    on_done = opts.on_done,
  }
  S.current = run
  vim.diagnostic.reset(M.namespaces.run, run.bufnr)
  local where = src.whole and src.name or string.format('%s:%d-%d', src.name, src.line1, src.line2)
  output.begin({ string.format('[pycell] %s | profile %s | %s', where, run.profile, run.id) }, c.output)
  M.client():request('execute', with_language(with_limits({
    code = src.code,
    executionId = run.id,
    profile = run.profile,
    stream = run.stream,
  }), language), function(e, result)
    finish(run, e, result)
  end)
  return run
end

--- Kill the run in progress. cb(err, result) gets the `kill` answer; the run itself ends
--- through its own `execute` answer (status "killed").
function M.kill(cb)
  local run = S.current
  if not run or run.done then
    notify('nothing is running')
    if cb then
      cb(nil, { killed = false, state = 'none' })
    end
    return false
  end
  M.client():request('kill', { executionId = run.id }, function(e, result)
    if e then
      notify('kill failed: ' .. tostring(e.message), levels.ERROR)
    end
    if cb then
      cb(e, result)
    end
  end)
  return true
end

local function set_analysis(src, diags, via, opts)
  if api.nvim_buf_is_valid(src.bufnr) then
    vim.diagnostic.set(M.namespaces.analyze, src.bufnr, diags, {})
  end
  if not opts.quiet then
    if #diags == 0 then
      notify('no problems found')
    else
      notify(string.format('%d problem(s); first at line %d: %s', #diags, diags[1].lnum + 1, diags[1].message), levels.WARN)
    end
  end
  if opts.on_done then
    opts.on_done(nil, diags, via)
  end
end

local function analyze_failed(msg, opts)
  notify('analyze failed: ' .. msg, levels.ERROR)
  if opts.on_done then
    opts.on_done(msg, nil, nil)
  end
end

--- Analyze a buffer (or a range) into vim.diagnostic, namespace M.namespaces.analyze.
--- Uses the server's `analyze` method; where the server does not have it (-32601), parses
--- the code with Python's `ast` through `execute` in the sandbox instead.
--- opts: bufnr, line1, line2, profile, language (default from the filetype), quiet,
--- on_done(err, diagnostics, via) where via is 'analyze' or 'execute'.
function M.analyze(opts)
  opts = opts or {}
  local src = source(opts.bufnr or 0, opts.line1, opts.line2)
  local language, why = opts.language, nil
  if not language then
    language, why = M.language_of(src.bufnr)
  end
  if not language then
    return analyze_failed(why, opts)
  end
  local profile = opts.profile or profile_for(language)
  local c = M.client()

  local function fallback()
    -- The fallback parses Python; a server without `analyze` runs no JavaScript either.
    if language == 'javascript' then
      return analyze_failed('this pycell server cannot analyze JavaScript (it has no analyze method)', opts)
    end
    c:request('execute', {
      code = diag.ANALYZER,
      inputs = { code = src.code },
      profile = profile,
    }, function(e, r)
      if e then
        return analyze_failed(tostring(e.message), opts)
      end
      if type(r) ~= 'table' or r.status ~= 'ok' then
        local why = type(r) == 'table' and type(r.error) == 'table' and tostring(r.error.message) or 'status ' .. tostring(r and r.status)
        return analyze_failed(why, opts)
      end
      set_analysis(src, diag.from_syntax_list(r.value, src), 'execute', opts)
    end)
  end

  if S.analyze_method == false then
    fallback()
    return
  end
  c:request('analyze', with_language({ code = src.code, profile = profile }, language), function(e, r)
    if e and e.code == rpc.errors.METHOD_NOT_FOUND then
      S.analyze_method = false
      return fallback()
    end
    if e then
      return analyze_failed(tostring(e.message), opts)
    end
    S.analyze_method = true
    set_analysis(src, diag.from_lsp(type(r) == 'table' and r.diagnostics or {}, src), 'analyze', opts)
  end)
end

--- A readable summary of a `status` answer.
function M.format_status(r)
  local lines = {}
  local server = S.client and S.client.server or {}
  local info = type(server.serverInfo) == 'table' and server.serverInfo or {}
  local iso = type(server.isolation) == 'table' and server.isolation or {}
  table.insert(lines, string.format('pycell %s | isolation %s | running %s | queued %s | executions %s',
    tostring(info.version or '?'), tostring(iso.level or '?'), tostring(r.running), tostring(r.queued),
    tostring(r.executionsTotal or '?')))
  for _, p in ipairs(type(r.pools) == 'table' and r.pools or {}) do
    table.insert(lines, string.format('  pool %s: ready %s/%s, starting %s, zygote pid %s',
      tostring(p.profile), tostring(p.ready), tostring(p.target), tostring(p.starting),
      is_nil(p.zygotePid) and '-' or tostring(p.zygotePid)))
  end
  if S.current and not S.current.done then
    table.insert(lines, string.format('  this editor: %s running for %.1f s', S.current.id,
      (vim.loop.hrtime() - S.current.started) / 1e9))
  end
  return table.concat(lines, '\n')
end

--- Ask the server for its state. cb(err, result, text).
function M.status(cb)
  M.client():request('status', nil, function(e, r)
    if e then
      notify('status failed: ' .. tostring(e.message), levels.ERROR)
      if cb then
        cb(e, nil, nil)
      end
      return
    end
    local text = M.format_status(type(r) == 'table' and r or {})
    if cb then
      cb(nil, r, text)
    else
      vim.notify(text, levels.INFO)
    end
  end)
end

--- Stop the server (shutdown, then exit). Called on VimLeavePre.
function M.stop()
  if S.client then
    S.client:stop(cfg().shutdown_timeout_ms)
  end
end

--- The profiles the server offers (once it has started), for command completion.
function M.profiles()
  local server = S.client and S.client.server
  local names = {}
  if server and type(server.profiles) == 'table' then
    for _, p in ipairs(server.profiles) do
      table.insert(names, p.name)
    end
  end
  if #names == 0 then
    names = { 'default', 'datascience', 'javascript' }
  end
  return names
end

-- Command entry points (see plugin/pycell.lua).
function M.command_run(o)
  M.run({
    line1 = o.range > 0 and o.line1 or nil,
    line2 = o.range > 0 and o.line2 or nil,
    profile = o.args ~= '' and o.args or nil,
    force = o.bang,
  })
end

function M.command_analyze(o)
  M.analyze({
    line1 = o.range > 0 and o.line1 or nil,
    line2 = o.range > 0 and o.line2 or nil,
    profile = o.args ~= '' and o.args or nil,
  })
end

function M.command_kill()
  M.kill()
end

function M.command_status()
  M.status(function(e, _, text)
    if not e then
      vim.notify(text, levels.INFO)
    end
  end)
end

return M
