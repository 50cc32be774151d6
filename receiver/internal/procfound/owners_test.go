//go:build linux

package procfound

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSocketInode(t *testing.T) {
	assert.Equal(t, uint64(120735342), socketInode([]byte("socket:[120735342]")))
	assert.Zero(t, socketInode([]byte("pipe:[120735342]")))
	assert.Zero(t, socketInode([]byte("socket:[12")))
	assert.Zero(t, socketInode([]byte("/dev/null")))
	assert.Zero(t, socketInode([]byte("anon_inode:[eventpoll]")))
}
