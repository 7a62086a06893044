"""From a photo or a video frame to the aligned face crop a model takes.

images     decode an image file or array (typed errors for corrupt/missing input)
detect     MediaPipe face detection + 478-point mesh (models inside the wheel)
landmarks  the 68-point landmarks the models use, from the mesh; canonical landmarks
align      similarity alignment of a face to the model's crop
pipeline   detect -> landmarks -> align in one call (``to_model_input``)
tracking   one face followed across video frames
frames     frames of a video file; video  the per-clip recognition of a video
"""
