# train stage (rules added by its owner)
