-- bench-vol.lua: wrk script for tests/bench/bench-vol.sh. Each thread
-- walks the chunk URLs listed in $BENCH_PATHS round-robin from its own
-- offset, so both servers get the same requests.
local paths = {}
local counter = 0
local threads = 0

function setup(thread)
   threads = threads + 1
   thread:set("offset", threads * 37)
end

function init(args)
   for line in io.lines(os.getenv("BENCH_PATHS")) do
      paths[#paths + 1] = line
   end
   counter = offset or 0
end

function request()
   counter = counter + 1
   return wrk.format("GET", paths[(counter % #paths) + 1])
end
