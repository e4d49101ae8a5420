//go:build privileged

package sensor_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/rs/zerolog"

	"github.com/vigil-fim/vigil/pkg/loader"
	"github.com/vigil-fim/vigil/pkg/sensor"
	"github.com/vigil-fim/vigil/pkg/testutil"
)

// One sensor per test binary: loading an object under an emulated kernel
// takes seconds, so every privileged test shares it.
var (
	sens    *sensor.Sensor
	coll    *testutil.Collector
	loadErr error
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childMain(os.Args[1:])) // a re-executed child actor (child_test.go)
	}
	if os.Geteuid() == 0 {
		log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.InfoLevel)
		object, hooks := testutil.SensorForce()
		sens, loadErr = sensor.New(loader.Options{Log: log, Object: object, Hooks: hooks})
		if loadErr == nil {
			coll = testutil.Collect(sens)
			info := sens.Info()
			fmt.Fprintf(os.Stderr, "sensor: kernel %s object %s (%s): %s; hooks %v\n",
				info.Kernel, info.Object, info.HookTyp, info.Why, info.Hooks)
		}
	}
	code := m.Run()
	if sens != nil {
		sens.Close()
	}
	os.Exit(code)
}

// needSensor gates a privileged test: skip when not root, fail when the
// sensor did not load.
func needSensor(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t)
	if loadErr != nil {
		t.Fatalf("sensor did not load: %v", loadErr)
	}
}
