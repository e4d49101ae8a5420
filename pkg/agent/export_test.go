package agent

import "time"

// SetSelfTest replaces the self-test's script and timeout for a test.
func SetSelfTest(script string, timeout time.Duration) (restore func()) {
	s, t := selfTestScript, selfTestTimeout
	selfTestScript, selfTestTimeout = script, timeout
	return func() { selfTestScript, selfTestTimeout = s, t }
}
