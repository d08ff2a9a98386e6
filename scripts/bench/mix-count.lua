-- The route mix of mix.lua, stopped after exactly N responses, for
-- scripts/bench/envoy-instructions (which divides the instructions it counted by N):
--   wrk -t1 -c1 -d3600s -s scripts/bench/mix-count.lua URL -- N
-- One thread and one connection, so that no request is in flight when the count is reached
-- (with more connections wrk reads a few more responses before it stops). Run from the
-- repository's root (mix.lua is loaded by that path).
dofile("scripts/bench/mix.lua")

local mix_init = init
local limit = 0
local seen = 0

init = function(args)
  limit = tonumber(args[1]) or error("mix-count.lua: give the number of requests: -- N")
  mix_init(args)
end

response = function()
  seen = seen + 1
  if seen == limit then
    wrk.thread:stop()
    -- wrk's main thread sleeps for the whole -d before it reports; its SIGINT handler ends
    -- the sleep. The shell's parent is wrk; it signals until wrk is gone, since a signal that
    -- comes before wrk set its handler is lost (a background job ignores SIGINT until then).
    -- Not os.execute: system() ignores SIGINT in wrk until the shell is done.
    io.popen("(while kill -INT $PPID 2>/dev/null; do sleep 0.1; done) &"):close()
  end
end
