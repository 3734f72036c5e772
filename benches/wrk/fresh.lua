-- wrk script for benches/wrk/cross_check.sh: cycles through the harness server's
-- minted JWTs, one prebuilt request per token, with the harness's browser-like Cookie
-- header. The tokens file (one "<jwt> <session token>" per line) is the first argument.
local requests = {}
local i = 0

function init(args)
  for line in io.lines(args[1]) do
    local jwt, token = line:match("^(%S+) (%S+)$")
    local cookie = "_ga=GA1.1.1843012745.1767225600; "
      .. "_ga_Q7X3ZP1K2D=GS1.1.1767225600.3.1.1767229200.0.0.0; theme=dark; "
      .. "stytch_session=" .. token .. "; stytch_session_jwt=" .. jwt
      .. "; csrftoken=9f2c1e7a4b8d6f3e0a5c7b9d1e3f5a7c"
    requests[#requests + 1] = wrk.format("GET", "/", {
      ["Cookie"] = cookie,
      ["User-Agent"] = "wrk",
      ["Accept"] = "*/*",
    })
  end
  i = math.random(#requests) - 1
end

function request()
  i = (i % #requests) + 1
  return requests[i]
end
