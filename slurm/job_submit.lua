--[[
slurm-krsi: a complete job_submit.lua that only checks the policy a job asks for (`--comment=policy:NAME`).
An example, for a controller without a job_submit.lua of its own: a site that has one adds the module
to it instead (see slurm_krsi.lua and the admin guide, slurm/README.md).

Install on the controller as /etc/slurm/job_submit.lua, with slurm_krsi.lua beside it as
/etc/slurm/slurm_krsi.lua, and `JobSubmitPlugins=lua` in slurm.conf.
--]]

package.path = "/etc/slurm/?.lua;" .. package.path
local krsi = require("slurm_krsi")

function slurm_job_submit(job_desc, part_list, submit_uid)
  return krsi.job_submit(job_desc, part_list, submit_uid)
end

function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
  return krsi.job_modify(job_desc, job_rec, part_list, modify_uid)
end

return slurm.SUCCESS
