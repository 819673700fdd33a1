-- pycell.nvim: commands and the exit hook. Nothing starts until a command is used;
-- configure with require('pycell').setup{...} (optional: the defaults work).
if vim.g.loaded_pycell then
  return
end
vim.g.loaded_pycell = 1

if vim.fn.has('nvim-0.7') ~= 1 then
  vim.notify('pycell.nvim needs Neovim 0.7 or later', vim.log.levels.ERROR)
  return
end

local function pycell()
  return require('pycell')
end

local function complete_profiles(lead)
  return vim.tbl_filter(function(name)
    return vim.startswith(name, lead)
  end, pycell().profiles())
end

local command = vim.api.nvim_create_user_command

command('PycellRun', function(o)
  pycell().command_run(o)
end, {
  range = true,
  bang = true,
  nargs = '?',
  complete = complete_profiles,
  desc = 'pycell: run the buffer (or the range) in a sandbox; [profile] overrides, ! kills a run in progress',
})

command('PycellKill', function(o)
  pycell().command_kill(o)
end, { desc = 'pycell: kill the run in progress' })

command('PycellAnalyze', function(o)
  pycell().command_analyze(o)
end, {
  range = true,
  nargs = '?',
  complete = complete_profiles,
  desc = 'pycell: report syntax errors (and what the profile forbids) as diagnostics',
})

command('PycellStatus', function(o)
  pycell().command_status(o)
end, { desc = 'pycell: server, isolation and pool state' })

vim.api.nvim_create_autocmd('VimLeavePre', {
  group = vim.api.nvim_create_augroup('pycell_exit', { clear = true }),
  desc = 'pycell: shutdown and exit the server',
  callback = function()
    -- Only when the module was loaded (so a server may be running).
    local m = package.loaded['pycell']
    if m then
      m.stop()
    end
  end,
})
