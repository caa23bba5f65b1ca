import LoadGen
import Testing
