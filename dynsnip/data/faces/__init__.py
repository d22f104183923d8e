"""Finding, following and cropping faces in videos.

Every route that turns a video into face clips (``predict``, ``extract-faces``, training,
``explain``) goes through the modules of this package, in this order:

* :mod:`~dynsnip.data.faces.detectors`: face detectors (dlib's HOG, the bundled MTCNN and
  BlazeFace, the ``auto`` cascade, ``none``) and the detection-row layout they all return.
* :mod:`~dynsnip.data.faces.mtcnn`: the MTCNN networks (torch, bundled MIT weights).
* :mod:`~dynsnip.data.faces.blazeface`: MediaPipe's BlazeFace networks (torch, bundled
  Apache-2.0 weights), anchors, decoding and weighted non-maximum suppression.
* :mod:`~dynsnip.data.faces.boxes`: box geometry (IoU, largest face, square crop box).
* :mod:`~dynsnip.data.faces.crop_policy`: the one crop policy: which frames are looked at
  and which box crops each snippet, identical for training and prediction.
* :mod:`~dynsnip.data.faces.tracks`: every face of a video followed under a stable id
  (videos with several people), dropped tracks (photos on the wall, passers-by), and which
  face of a fake was swapped.
* :mod:`~dynsnip.data.faces.crop`: cutting and resizing a box out of a frame.
* :mod:`~dynsnip.data.faces.extraction`: ``extract-faces``, writing each video's face
  regions to a folder once, with the detections beside them.
* :mod:`~dynsnip.data.faces.face_folder`: reading such a folder back through the crop policy.
* :mod:`~dynsnip.data.faces.folder_source`: which video such a folder holds, whether it is
  complete, and what it is called.
* :mod:`~dynsnip.data.faces.face_shown`: whether the scored frames still show the face found
  on the looked-at frames (the face coverage of the scored frames).
* :mod:`~dynsnip.data.faces.png_writer`: the fast PNG encoder the extraction writes with.

The names a user reaches for are also importable from :mod:`dynsnip.data` directly. Modules
are imported on first use (numpy and the ``video`` extra are needed only then).
"""
