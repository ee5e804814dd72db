// Package dockertest builds the small images the Docker tests run (a
// static binary FROM scratch): a Dockerfile and its files, sent to the
// engine's build API as a tar context, the image labelled llem.test=1 so
// the suites can find and remove what they made.
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
)

// File is one file of a build context.
type File struct {
	Name string
	Mode int64
	Data []byte
}

// Build builds the image tag from dockerfile and files.
func Build(cli *client.Client, tag, dockerfile string, files ...File) error {
	var ctxTar bytes.Buffer
	tw := tar.NewWriter(&ctxTar)
	for _, f := range append([]File{{"Dockerfile", 0o644, []byte(dockerfile)}}, files...) {
		if err := tw.WriteHeader(&tar.Header{Name: f.Name, Mode: f.Mode, Size: int64(len(f.Data))}); err != nil {
			return err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	resp, err := cli.ImageBuild(ctx, &ctxTar, build.ImageBuildOptions{Tags: []string{tag}, Remove: true, ForceRemove: true,
		Dockerfile: "Dockerfile", Labels: map[string]string{"llem.test": "1"}})
	if err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	defer resp.Body.Close()
	if err := jsonmessage.DisplayJSONMessagesStream(resp.Body, io.Discard, 0, false, nil); err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	return nil
}
