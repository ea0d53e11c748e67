"""Where product images' bytes live and how a platform reaches them: one interface
(:class:`fusion.media.storage.MediaStore`) with a local folder under ``FUSION_HOME`` (dev) and
an S3-compatible bucket (production) behind it, and the sniffing that decides what an upload
is from its bytes."""
