// The CPU kernel suites on their portable variants.
import { forceIsa } from './isa';

forceIsa('generic');
