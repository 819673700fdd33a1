-- pycell.config: the settings given to require('pycell').setup{}, with their defaults.
local M = {}

M.defaults = {
  -- The pycell binary: a name looked up on $PATH, or a path ('~' is expanded).
  binary = 'pycell',
  -- Extra arguments for `pycell serve`, e.g. { '--config', '~/.config/pycell.json' }.
  args = {},
  -- The profile Python runs use (`:PycellRun other` overrides it for one run).
  profile = 'default',
  -- The profile JavaScript runs use (buffers whose filetype is `javascript`, run by Node.js).
  javascript_profile = 'javascript',
  -- Limits sent with every execution; each may only tighten the profile's own limit.
  -- Keys: timeoutMs, cpuMs, memoryMb, maxOutputBytes, maxProcesses, diskMb.
  limits = {},
  -- Stream stdout/stderr into the output buffer while the code runs.
  stream = true,
  -- The output split: `split` is a command modifier (botright, topleft, belowright,
  -- aboveright), `size` its height (or width when `vertical`), `focus` moves the cursor
  -- into it.
  output = { split = 'botright', size = 12, vertical = false, focus = false },
  -- Run :PycellAnalyze on every write of a Python (*.py) or JavaScript (*.js) buffer.
  analyze_on_save = false,
  -- How long Neovim waits for the server's `shutdown` answer when it quits.
  shutdown_timeout_ms = 2000,
}

M.values = vim.deepcopy(M.defaults)

function M.set(opts)
  opts = opts or {}
  vim.validate({
    binary = { opts.binary, 'string', true },
    args = { opts.args, 'table', true },
    profile = { opts.profile, 'string', true },
    javascript_profile = { opts.javascript_profile, 'string', true },
    limits = { opts.limits, 'table', true },
    stream = { opts.stream, 'boolean', true },
    output = { opts.output, 'table', true },
    analyze_on_save = { opts.analyze_on_save, 'boolean', true },
    shutdown_timeout_ms = { opts.shutdown_timeout_ms, 'number', true },
  })
  -- Lists and the limits table are replaced as a whole, not merged key by key.
  local merged = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts)
  if opts.args then
    merged.args = vim.deepcopy(opts.args)
  end
  if opts.limits then
    merged.limits = vim.deepcopy(opts.limits)
  end
  M.values = merged
  return merged
end

function M.get()
  return M.values
end

return M
