"""The finalize stage and what only it uses: its batched deletes."""
