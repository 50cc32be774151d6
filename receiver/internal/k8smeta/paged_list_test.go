package k8smeta

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// pagedList asks in pages, continues the first page's snapshot, strips every object as its
// page arrives, and keeps a relist's "at least this version" meaning.
func TestPagedList(t *testing.T) {
	pods := make([]corev1.Pod, 1234)
	for i := range pods {
		pods[i] = corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: fmt.Sprintf("p%d", i)},
			Status:     corev1.PodStatus{PodIP: fmt.Sprintf("10.1.%d.%d", i/250, i%250)},
		}
	}
	var asked []metav1.ListOptions
	list := func(_ context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		asked = append(asked, opts)
		from := 0
		if opts.Continue != "" {
			_, err := fmt.Sscan(opts.Continue, &from)
			require.NoError(t, err)
		}
		to := min(from+int(opts.Limit), len(pods))
		page := &corev1.PodList{ListMeta: metav1.ListMeta{ResourceVersion: "77"}, Items: pods[from:to]}
		if to < len(pods) {
			page.Continue = strconv.Itoa(to)
		}
		return page, nil
	}

	for _, rv := range []string{"0", "", "42"} {
		asked = nil
		obj, err := pagedList(list, transformPeerPod)(context.Background(), metav1.ListOptions{ResourceVersion: rv})
		require.NoError(t, err)
		items, err := meta.ExtractList(obj)
		require.NoError(t, err)
		require.Len(t, items, len(pods), "every object, across %d pages", len(asked))
		for i, o := range items {
			a, ok := o.(*addressOwner)
			require.True(t, ok, "stripped as it arrived: %T", o)
			assert.Equal(t, pods[i].Name, a.Name)
			assert.Equal(t, []string{pods[i].Status.PodIP}, a.ips)
		}
		lm, err := meta.ListAccessor(obj)
		require.NoError(t, err)
		assert.Equal(t, "77", lm.GetResourceVersion())
		assert.Empty(t, lm.GetContinue())

		require.Len(t, asked, 3, "1234 objects in pages of %d", listPageSize)
		wantRV := rv
		if rv == "0" {
			wantRV = "" // the watch cache answers "0" whole
		}
		assert.Equal(t, wantRV, asked[0].ResourceVersion)
		wantMatch := metav1.ResourceVersionMatch("")
		if rv == "42" {
			wantMatch = metav1.ResourceVersionMatchNotOlderThan // a relist: at least that version, not exactly
		}
		assert.Equal(t, wantMatch, asked[0].ResourceVersionMatch)
		for _, o := range asked {
			assert.Equal(t, int64(listPageSize), o.Limit)
		}
		for _, o := range asked[1:] {
			assert.NotEmpty(t, o.Continue)
			assert.Empty(t, o.ResourceVersion, "a continued list names no version")
			assert.Empty(t, o.ResourceVersionMatch)
		}
	}
}
