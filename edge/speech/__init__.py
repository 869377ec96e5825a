"""Signs to speech on the device (``slr-speak``): what to say (:mod:`.utterances`), the bounded queue
(:mod:`.queue`) and the text-to-speech engine (:mod:`.engine`)."""
