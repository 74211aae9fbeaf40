// `vapipe detect` on real photos (written with the models module).
