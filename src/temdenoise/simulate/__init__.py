"""abTEM data factory: supported nanoparticle structures, HRTEM imaging, videos, sharded datasets."""
