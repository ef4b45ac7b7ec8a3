--[[
slurm-krsi: submit-time check of the policy a job asks for (`--comment=policy:NAME`), as a Lua module
for a site's own job_submit.lua (Slurm reads one job_submit.lua: this module goes into it).

Install on the controller as /etc/slurm/slurm_krsi.lua, then in the site's /etc/slurm/job_submit.lua:

    package.path = "/etc/slurm/?.lua;" .. package.path
    local krsi = require("slurm_krsi")

and, first thing in the site's slurm_job_submit and slurm_job_modify:

    local rc = krsi.job_submit(job_desc, part_list, submit_uid)
    if rc ~= slurm.SUCCESS then return rc end

    local rc = krsi.job_modify(job_desc, job_rec, part_list, modify_uid)
    if rc ~= slurm.SUCCESS then return rc end

slurm/job_submit.lua is a complete job_submit.lua doing only this. slurmctld reloads job_submit.lua when
that file changes, not when a module it requires does: touch job_submit.lua after updating this one.

The valid names come from /etc/slurm-krsi/profiles.lua (read at every check, so a new list applies at
once), generated on a node (or any host with the same /etc/slurm-krsi/krsi.ini) by

    krsictl profiles --lua > /etc/slurm-krsi/profiles.lua

which prints a Lua table literal such as `return { "default", "strict" }`. Keep it in step with the
nodes' config (the same config management that ships krsi.ini). A name that slips through anyway (a
node with an older config) is not a hole: the node applies the floor plus its strictest profile.

A comment is free text: it is only matched against here, never evaluated. Works with Lua 5.1 to 5.4.
--]]

local M = {}

-- where the list of valid profile names is read from; a site may set another path after require
M.profiles_file = "/etc/slurm-krsi/profiles.lua"

local NAME_MAX = 64

local function load_profiles(path)
  -- text only, with an empty environment: the file is data, it must not reach Slurm's globals
  local chunk = loadfile(path, "t", {})
  if not chunk then return nil end
  if setfenv then setfenv(chunk, {}) end -- Lua 5.1 ignores loadfile's environment argument
  local ok, list = pcall(chunk)
  if not ok or type(list) ~= "table" then return nil end
  local set = {}
  for _, name in ipairs(list) do set[name] = true end
  return set, table.concat(list, ", ")
end

-- every policy:NAME in the comment, as written (NAME up to whitespace, ',' or ';')
local function requested_policies(comment)
  local names = {}
  for name in string.gmatch(" " .. comment, "[^%w_]policy:([^%s,;]*)") do
    names[#names + 1] = name
  end
  return names
end

-- slurm.SUCCESS for a comment that names no policy or one valid policy; otherwise slurm.ERROR, with a
-- message to the user naming the problem and the valid policies
function M.check_comment(comment)
  if comment == nil or comment == "" then return slurm.SUCCESS end
  local names = requested_policies(comment)
  if #names == 0 then return slurm.SUCCESS end
  local valid, listing = load_profiles(M.profiles_file)
  if valid == nil then
    slurm.log_info("slurm-krsi: cannot read %s; not checking policy names", M.profiles_file)
    return slurm.SUCCESS
  end
  local first = nil
  for _, name in ipairs(names) do
    if first ~= nil and name ~= first then
      slurm.log_user("slurm-krsi: the comment names several policies (%s, %s); name one. Valid policies: %s", first, name, listing)
      return slurm.ERROR
    end
    first = name
    if #name == 0 or #name > NAME_MAX or not string.match(name, "^[%w_%.%-]+$") then
      slurm.log_user("slurm-krsi: malformed policy name in --comment (policy:NAME, NAME of letters, digits, . _ -). Valid policies: %s", listing)
      return slurm.ERROR
    end
    if not valid[name] then
      slurm.log_user("slurm-krsi: unknown policy \"%s\" in --comment. Valid policies: %s", name, listing)
      return slurm.ERROR
    end
  end
  return slurm.SUCCESS
end

function M.job_submit(job_desc, part_list, submit_uid)
  return M.check_comment(job_desc.comment)
end

-- a comment changed later is checked too; it does not change a running job's policy on the node
function M.job_modify(job_desc, job_rec, part_list, modify_uid)
  return M.check_comment(job_desc.comment)
end

return M
