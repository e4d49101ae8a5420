package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"syscall"

	"github.com/vigil-fim/vigil/pkg/consumer"
)

// maxRead bounds what a consumer is given of one file; the hash covers the
// whole file whatever its size.
const maxRead = 16 << 20

// readFileStat reads a watched file for its consumer: content (up to maxRead),
// its stat, and the sha256 of all of it. A file that is not there gives a
// nil content and info, and a nil stat. It does not follow a final symlink
// and never blocks on a FIFO.
func readFileStat(path string) (consumer.Input, string, *syscall.Stat_t) {
	in := consumer.Input{Path: path}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return in, "", nil
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return in, "", nil
	}
	in.Info = &consumer.FileInfo{
		Size: st.Size, Mode: st.Mode, UID: st.Uid, GID: st.Gid,
		MtimeNS: st.Mtim.Nano(), CtimeNS: st.Ctim.Nano(),
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return in, "", &st // a FIFO, device or directory: attributes only
	}
	h := sha256.New()
	buf, err := io.ReadAll(io.TeeReader(io.LimitReader(f, maxRead), h))
	if err != nil {
		return in, "", &st
	}
	in.Content = buf
	if _, err := io.Copy(h, f); err != nil {
		return in, "", &st
	}
	return in, hex.EncodeToString(h.Sum(nil)), &st
}
