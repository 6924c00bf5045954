// Package flight runs one call per key for all concurrent callers, like
// golang.org/x/sync/singleflight, with the lifetime a proxy needs: the call
// runs detached from any one caller (the first client hanging up must not
// fail the others), and it is cancelled when the last caller waiting for it
// has gone. Work nobody waits for any more is not finished for nobody.
package flight
