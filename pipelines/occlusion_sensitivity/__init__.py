"""``pare occlusion-analysis``: the occlusion sensitivity analysis of PARE's paper (a grey patch slid
over each image, errors per joint and per hidden body part) and its figures."""
