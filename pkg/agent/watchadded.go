package agent

import (
	"time"

	"github.com/rs/zerolog"
)

// maxAddedListed bounds the paths a watch-added record (or a reload's
// watch_added) lists; count covers them all.
const maxAddedListed = 100

// watchAddedDict describes the existing files that joined the watch set:
// newly watched, not new, so they were given a baseline and not reported
// created.
func watchAddedDict(paths []string) *zerolog.Event {
	listed := paths
	if len(listed) > maxAddedListed {
		listed = listed[:maxAddedListed]
	}
	v := zerolog.Dict().Int("count", len(paths)).Strs("paths", listed)
	if len(paths) > len(listed) {
		v.Int("not_listed", len(paths)-len(listed))
	}
	return v
}

// watchAdded is the state record, once per start, naming the existing
// files that the configuration watches now and the previous run did not.
func (r *recorder) watchAdded(paths []string) {
	r.begin(time.Now(), "watch-added", []string{"configuration"}, []string{"change"}, "state").
		Dict("vigil", zerolog.Dict().Dict("watch_added", watchAddedDict(paths))).Send()
}
