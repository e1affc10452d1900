"""The offline harness: what the tests, the rehearsal and the plan stand on, and no command of its own.

Provider-strict mocks (mocks.py, with AWS's refusals in aws_rules.py and what only AWS knows in assumed.py), the
program runner (program.py), the host sandbox (sandbox/), and the rehearsal's stand-ins and probes: the load
balancer (lbstandin.py), wstore's TLS (tlsprobe.py), NGINX checks (nginxconf.py), the metrics endpoints (scrape.py).
The commands users run live in tools/.
"""
