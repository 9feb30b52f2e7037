# The canary rule of the side-by-side peer in benches/decide.rs: the same
# request document Verdict's policies see, the same question.
#   rollback: mean canary error rate above twice its threshold;
#   promote:  error rate, p99 latency and sample count within thresholds,
#             and no freeze;
#   hold:     anything else.
package verdict.canary

import rego.v1

max_error_rate := 0.01

max_p99_ms := 250

min_samples := 10

samples(name) := [x | some m in input.metrics; m.name == name; some x in m.canary]

errors := samples("error_rate")

latencies := sort(samples("latency_p99_ms"))

error_rate := sum(errors) / count(errors)

p99 := latencies[ceil(0.99 * count(latencies)) - 1]

decision := "rollback" if {
	error_rate > 2 * max_error_rate
} else := "promote" if {
	error_rate <= max_error_rate
	p99 <= max_p99_ms
	count(latencies) >= min_samples
	count(errors) >= min_samples
	not input.freeze
} else := "hold"
