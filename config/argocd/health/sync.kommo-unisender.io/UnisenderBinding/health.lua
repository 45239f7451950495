-- Argo CD health of a UnisenderBinding, from its kstatus-style conditions.
-- Order matters: a deleted object is Progressing whatever its status says; a
-- suspended one keeps a stale status, so suspend wins over everything else;
-- a status older than the spec says nothing about the spec yet; Stalled
-- (a permanent failure, no retries) is Degraded even while reconciling; a
-- transient failure being retried (Reconciling=True) is Progressing.
local hs = { status = "Progressing", message = "Waiting for the operator to report status" }

local function condition(conditions, ctype)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  if c == nil then
    return fallback
  end
  local text = c.reason or ""
  if c.message ~= nil and c.message ~= "" then
    if text ~= "" then
      text = text .. ": "
    end
    text = text .. c.message
  end
  if text == "" then
    return fallback
  end
  return text
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.message = "Being deleted: the operator is cleaning up"
  return hs
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "spec.suspend is true"
  return hs
end

local status = obj.status or {}
local conditions = status.conditions
local generation = obj.metadata and obj.metadata.generation or nil
local ready = condition(conditions, "Ready")

local observed = status.observedGeneration
if observed == nil and ready ~= nil then
  observed = ready.observedGeneration
end
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local stalled = condition(conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled, "Stalled")
  return hs
end

local reconciling = condition(conditions, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = describe(reconciling, "Reconciling")
  return hs
end

if ready ~= nil then
  if ready.status == "True" then
    hs.status = "Healthy"
    hs.message = describe(ready, "Ready")
  elseif ready.status == "False" then
    hs.status = "Degraded"
    hs.message = describe(ready, "Not ready")
  else
    hs.message = describe(ready, "Readiness unknown")
  end
end
return hs
