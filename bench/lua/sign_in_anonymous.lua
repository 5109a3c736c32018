-- POST /sign-in/anonymous with an empty JSON body, as the client sends it.
wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"
