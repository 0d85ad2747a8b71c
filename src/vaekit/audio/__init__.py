"""Audio runs: signal processing (:mod:`.dsp`), the ``audio`` data kind's loader (:mod:`.data`), turning
decoded spectrograms back into sound (:mod:`.synth`)."""
