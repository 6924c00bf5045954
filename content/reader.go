package content

import (
	"context"
	"errors"
	"io"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// driverReader is an io.ReadSeeker over a driver object of known size
// (http.ServeContent seeks for Range): a seek only moves the offset; the
// driver's reader is opened at the offset on the next Read.
type driverReader struct {
	ctx  context.Context
	d    storagedriver.StorageDriver
	path string
	size int64
	off  int64
	rc   io.ReadCloser
}

func (r *driverReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	if r.rc == nil {
		rc, err := r.d.Reader(r.ctx, r.path, r.off)
		if err != nil {
			return 0, err
		}
		r.rc = rc
	}
	n, err := r.rc.Read(p)
	r.off += int64(n)
	return n, err
}

func (r *driverReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	}
	if offset < 0 {
		return 0, errors.New("content: seek before the start")
	}
	if offset != r.off && r.rc != nil {
		r.rc.Close()
		r.rc = nil
	}
	r.off = offset
	return offset, nil
}

func (r *driverReader) Close() error {
	if r.rc != nil {
		return r.rc.Close()
	}
	return nil
}
