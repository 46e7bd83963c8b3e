-- wrk script for the overload runs of scripts/bench: checks every response and counts
--   discounted    200, X-Discount-Status: complete, and all three products discounted
--   undiscounted  any other 200 (a wrong price for customer 1)
--   shed          503 with Retry-After
--   bad_shed      503 without Retry-After
--   other         any other status
-- and prints one line with the totals when the run ends.

discounted, undiscounted, shed, bad_shed, other = 0, 0, 0, 0, 0
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function response(status, headers, body)
   if status == 200 then
      local _, n = string.gsub(body, '"discount_value"', "")
      if n == 3 and headers["x-discount-status"] == "complete" then
         discounted = discounted + 1
      else
         undiscounted = undiscounted + 1
      end
   elseif status == 503 then
      if headers["retry-after"] then
         shed = shed + 1
      else
         bad_shed = bad_shed + 1
      end
   else
      other = other + 1
   end
end

function done(summary, latency, requests)
   local total = { discounted = 0, undiscounted = 0, shed = 0, bad_shed = 0, other = 0 }
   for _, thread in ipairs(threads) do
      for key, _ in pairs(total) do
         total[key] = total[key] + thread:get(key)
      end
   end
   io.write(string.format(
      "overload: discounted=%d undiscounted=%d shed=%d bad_shed=%d other=%d\n",
      total.discounted, total.undiscounted, total.shed, total.bad_shed, total.other))
end
