-- pycell.rpc: the protocol client. It starts `pycell serve`, speaks JSON-RPC over stdio in
-- LSP framing (through Neovim's own vim.lsp.rpc), performs `initialize`, queues requests
-- made before initialization finished, routes server notifications to handlers, and shuts
-- the server down. It knows nothing about buffers or windows: the UI lives in pycell.init.
local M = {}

-- Error codes this client produces itself (JSON-RPC reserves -32099..-32000 for servers;
-- these stay outside the ranges pycell uses).
M.errors = {
  METHOD_NOT_FOUND = -32601,
  SPAWN_FAILED = -32901, -- the binary could not be started
  SERVER_EXITED = -32902, -- the server exited before answering
  NOT_RUNNING = -32903, -- the client is shutting down or stopped
}

local Client = {}
Client.__index = Client

local function err(code, message, data)
  return { code = code, message = message, data = data }
end

--- Create a client (the server is not started yet).
--- opts:
---   cmd      (string)   the pycell binary (a path or a name on $PATH)
---   args     (table)    arguments, e.g. {'serve', '--framing', 'lsp'}
---   env      (table?)   extra environment variables
---   client_info (table?) {name, version} sent in initialize
---   on_ready (function(server_info)?)      after a successful initialize
---   on_exit  (function(code, signal, expected)?) when the process ended
---   on_error (function(message)?)          transport-level trouble (bad JSON, read error)
function M.new(opts)
  local self = setmetatable({}, Client)
  self.opts = opts or {}
  self.state = 'stopped' -- stopped | initializing | ready | stopping | exited
  self.handlers = {} -- method -> function(params)
  self.queue = {} -- requests made while initializing: {method, params, callback}
  self.inflight = {} -- token -> callback, for requests sent and not answered yet
  self.next_token = 0
  self.server = nil -- the initialize result
  return self
end

--- Register a handler for a server notification (e.g. 'execute/output').
function Client:on(method, fn)
  self.handlers[method] = fn
end

function Client:is_ready()
  return self.state == 'ready'
end

function Client:is_alive()
  return self.state == 'initializing' or self.state == 'ready' or self.state == 'stopping'
end

-- vim.lsp.rpc.start changed its signature in Neovim 0.10: (cmd, cmd_args, dispatchers,
-- extra_spawn_params) before, ({cmd, args...}, dispatchers, extra_spawn_params) since.
local function spawn(cmd, args, dispatchers, extra)
  local rpc = require('vim.lsp.rpc')
  if vim.fn.has('nvim-0.10') == 1 then
    local argv = { cmd }
    vim.list_extend(argv, args)
    return rpc.start(argv, dispatchers, extra)
  end
  return rpc.start(cmd, args, dispatchers, extra)
end

local function fail_all(self, e)
  local inflight, queue = self.inflight, self.queue
  self.inflight, self.queue = {}, {}
  for _, cb in pairs(inflight) do
    pcall(cb, e, nil)
  end
  for _, q in ipairs(queue) do
    pcall(q.callback, e, nil)
  end
end

-- Send now (the client must be ready, or this is initialize/shutdown itself).
function Client:_send(method, params, callback)
  self.next_token = self.next_token + 1
  local token = self.next_token
  self.inflight[token] = callback
  local ok, sent = pcall(self.rpc.request, method, params, function(e, result)
    local cb = self.inflight[token]
    if not cb then
      return -- already failed (server exited)
    end
    self.inflight[token] = nil
    cb(e, result)
  end)
  if not ok or not sent then
    self.inflight[token] = nil
    callback(err(M.errors.NOT_RUNNING, 'could not send ' .. method .. ' to the pycell server'), nil)
    return nil
  end
  return token
end

--- Start the server and initialize it (asynchronously). Returns true, or nil and a message.
--- Requests made before initialize has answered are queued and sent after it.
function Client:start()
  if self:is_alive() then
    return true
  end
  local cmd = self.opts.cmd or 'pycell'
  if vim.fn.executable(cmd) ~= 1 then
    return nil, string.format('pycell binary not found or not executable: %s', cmd)
  end
  self.state = 'initializing'
  self.server = nil
  self.expected_exit = false
  self.exit_code, self.exit_signal = nil, nil

  local dispatchers = {
    notification = function(method, params)
      local h = self.handlers[method]
      if h then
        h(params)
      end
    end,
    -- pycell sends no requests to its client; answer MethodNotFound if it ever does.
    server_request = function(_method, _params)
      return nil, require('vim.lsp.rpc').rpc_response_error(M.errors.METHOD_NOT_FOUND)
    end,
    on_exit = function(code, signal)
      -- Called from the libuv callback in 0.7: get back onto the main loop.
      vim.schedule(function()
        self:_on_exit(code, signal)
      end)
    end,
    on_error = function(code, e)
      if self.opts.on_error then
        local name = require('vim.lsp.rpc').client_errors[code] or tostring(code)
        vim.schedule(function()
          self.opts.on_error(string.format('%s: %s', name, vim.inspect(e)))
        end)
      end
    end,
  }

  local ok, rpc = pcall(spawn, cmd, self.opts.args or { 'serve' }, dispatchers, { env = self.opts.env })
  if not ok or not rpc then
    self.state = 'stopped'
    return nil, string.format('could not start %s: %s', cmd, ok and 'spawn failed' or tostring(rpc))
  end
  self.rpc = rpc
  self.pid = rpc.pid

  local init_params = {
    processId = vim.fn.getpid(),
    clientInfo = self.opts.client_info or { name = 'pycell.nvim' },
    capabilities = vim.empty_dict(),
  }
  self:_send('initialize', init_params, function(e, result)
    if e then
      local msg = 'pycell initialize failed: ' .. (e.message or vim.inspect(e))
      fail_all(self, err(e.code or M.errors.NOT_RUNNING, msg, e.data))
      self:_terminate()
      return
    end
    self.server = result or {}
    self.state = 'ready'
    local queue = self.queue
    self.queue = {}
    for _, q in ipairs(queue) do
      self:_send(q.method, q.params, q.callback)
    end
    if self.opts.on_ready then
      self.opts.on_ready(self.server)
    end
  end)
  return true
end

function Client:_on_exit(code, signal)
  local expected = self.expected_exit
  self.state = 'exited'
  self.exit_code, self.exit_signal = code, signal
  self.rpc = nil
  fail_all(self, err(M.errors.SERVER_EXITED, string.format('the pycell server exited (code %s, signal %s)', tostring(code), tostring(signal))))
  if self.opts.on_exit then
    self.opts.on_exit(code, signal, expected)
  end
end

--- Send a request; callback(err, result) runs on the main loop. Starts the server when it
--- is not running. err is a table {code, message, data}. Returns true when accepted.
function Client:request(method, params, callback)
  callback = callback or function() end
  if self.state == 'stopping' then
    callback(err(M.errors.NOT_RUNNING, 'the pycell server is shutting down'), nil)
    return false
  end
  if not self:is_alive() then
    local ok, msg = self:start()
    if not ok then
      callback(err(M.errors.SPAWN_FAILED, msg), nil)
      return false
    end
  end
  if self.state == 'initializing' then
    table.insert(self.queue, { method = method, params = params, callback = callback })
    return true
  end
  return self:_send(method, params, callback) ~= nil
end

--- Send a notification (only once the server is ready; dropped otherwise).
function Client:notify(method, params)
  if self.rpc and self.state == 'ready' then
    return self.rpc.notify(method, params)
  end
  return false
end

--- Request and wait (blocking the editor, processing events) at most timeout_ms.
--- Returns err, result; err.code == 'timeout' on timeout.
function Client:request_sync(method, params, timeout_ms)
  local done, e, res = false, nil, nil
  self:request(method, params, function(a, b)
    done, e, res = true, a, b
  end)
  if not vim.wait(timeout_ms or 5000, function()
    return done
  end, 10) then
    return { code = 'timeout', message = method .. ' timed out' }, nil
  end
  return e, res
end

function Client:_terminate()
  self.expected_exit = true
  local rpc = self.rpc
  if not rpc then
    return
  end
  if rpc.terminate then
    pcall(rpc.terminate)
  elseif rpc.handle and not rpc.handle:is_closing() then
    pcall(rpc.handle.kill, rpc.handle, 15)
  end
end

--- Stop the server: `shutdown` (which waits for executions in flight), then `exit`.
--- Blocks at most about 2 * timeout_ms; if the server has not exited by then it is
--- terminated. Safe to call when nothing runs.
function Client:stop(timeout_ms)
  timeout_ms = timeout_ms or 2000
  if not self:is_alive() or self.state == 'stopping' then
    return
  end
  if self.state == 'initializing' then
    -- Let initialize finish so shutdown is a valid request.
    vim.wait(timeout_ms, function()
      return self.state ~= 'initializing'
    end, 10)
  end
  if self.state == 'ready' then
    self.state = 'stopping'
    self.expected_exit = true
    local done = false
    self:_send('shutdown', nil, function()
      done = true
    end)
    vim.wait(timeout_ms, function()
      return done
    end, 10)
    if self.rpc then
      pcall(self.rpc.notify, 'exit', nil)
    end
  end
  if not vim.wait(timeout_ms, function()
    return self.state == 'exited'
  end, 10) then
    self:_terminate()
    vim.wait(500, function()
      return self.state == 'exited'
    end, 10)
  end
end

return M
