-- wrk script for bench/run.sh: client_credentials POSTs to the token
-- endpoint, with the client's Basic credentials from $AUTH. Every request
-- mints and stores a new access token.

wrk.method = "POST"
wrk.body = "grant_type=client_credentials&scope=bench"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = os.getenv("AUTH")
