-- wrk script: POST the one-contact Kommo "add" webhook (the add-contact
-- sample, URL-encoded) to the webhook route, as Kommo delivers it.
--
--   WEBHOOK_BODY_FILE=add-contact.body \
--   wrk -t2 -c32 -d15s --latency -s wrk-webhook.lua \
--       http://127.0.0.1:PORT/kommo/webhooks/<namespace>.<binding>/<secret>
--
-- BenchmarkWebhookIngestWrk writes the body file and runs this.
local f = assert(io.open(os.getenv("WEBHOOK_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
