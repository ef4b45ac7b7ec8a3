--[[
slurm-krsi: submit-time check of the policy a job asks for (`--comment=policy:NAME`).

Install on the controller as /etc/slurm/job_submit.lua with `JobSubmitPlugins=lua` in slurm.conf.
The valid names come from /etc/slurm-krsi/profiles.lua, generated on a node (or any host with the same
/etc/slurm-krsi/krsi.ini) by

    krsictl profiles --lua > /etc/slurm-krsi/profiles.lua

which prints a Lua table literal such as `return { "default", "strict" }`. Keep it in step with the
nodes' config (the same config management that ships krsi.ini). A name that slips through anyway (a
node with an older config) is not a hole: the node applies the floor plus its strictest profile.

A comment is free text: it is only matched against here, never evaluated.
--]]

local PROFILES_FILE = "/etc/slurm-krsi/profiles.lua"
local NAME_MAX = 64

local function load_profiles()
  -- text only, with an empty environment: the file is data, it must not reach Slurm's globals
  local chunk = loadfile(PROFILES_FILE, "t", {})
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

local function check_comment(comment)
  if comment == nil or comment == "" then return slurm.SUCCESS end
  local names = requested_policies(comment)
  if #names == 0 then return slurm.SUCCESS end
  local valid, listing = load_profiles()
  if valid == nil then
    slurm.log_info("slurm-krsi: cannot read %s; not checking policy names", PROFILES_FILE)
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

function slurm_job_submit(job_desc, part_list, submit_uid)
  return check_comment(job_desc.comment)
end

-- a comment changed later is checked too; it does not change a running job's policy on the node
function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
  return check_comment(job_desc.comment)
end

return slurm.SUCCESS
